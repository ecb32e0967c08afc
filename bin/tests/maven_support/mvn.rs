//! The real mvn client, with a settings.xml sending every repository through the mirror,
//! and small projects for it to build and deploy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::launch::isolate_from_proxies;
use crate::support::process::ProcessRun;

/// A cold build resolves a few dozen plugin files through the mirror.
const MVN_TIMEOUT: Duration = Duration::from_secs(300);

/// The plugin versions Debian packages (and the tests pin): the super-POM's defaults are
/// older ones that only exist on Maven Central.
const PLUGINS: [(&str, &str); 6] = [
    ("maven-resources-plugin", "3.3.0"),
    ("maven-compiler-plugin", "3.10.1"),
    ("maven-surefire-plugin", "2.22.3"),
    ("maven-jar-plugin", "3.3.0"),
    ("maven-install-plugin", "3.1.0"),
    ("maven-deploy-plugin", "3.0.0"),
];

/// `mvn dependency:get`, fully qualified so that no plugin prefix needs resolving.
pub(crate) const DEPENDENCY_GET: &str =
    "org.apache.maven.plugins:maven-dependency-plugin:3.5.0:get";

/// A settings.xml and a local repository for mvn.
#[derive(Debug)]
pub(crate) struct Mvn {
    dir: TempDir,
    settings: PathBuf,
    local_repository: PathBuf,
}

impl Mvn {
    /// mvn with every repository mirrored by `mirror`'s `public` group, and deploy
    /// credentials for the `releases` and `snapshots` servers when given.
    pub(crate) fn new(mirror: &str, credentials: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("create mvn's temporary directory");
        let settings = dir.path().join("settings.xml");
        std::fs::write(&settings, settings_xml(mirror, credentials)).expect("write settings.xml");
        let mut mvn = Self {
            local_repository: PathBuf::new(),
            dir,
            settings,
        };
        mvn.fresh_local_repository();
        mvn
    }

    /// Starts over with an empty local repository, as on a fresh machine.
    pub(crate) fn fresh_local_repository(&mut self) {
        let count = std::fs::read_dir(self.dir.path()).map_or(0, Iterator::count);
        self.local_repository = self.dir.path().join(format!("repository-{count}"));
        std::fs::create_dir(&self.local_repository).expect("create a local repository");
    }

    /// A file of the local repository, by its path in the Maven 2 layout.
    pub(crate) fn local_file(&self, path: &str) -> PathBuf {
        self.local_repository.join(path)
    }

    /// Runs `mvn -B -s settings.xml -Dmaven.repo.local=... <args>` in `dir`.
    pub(crate) async fn run(&self, dir: &Path, args: &[&str]) -> ProcessRun {
        let mut command = Command::new("mvn");
        command
            .current_dir(dir)
            .arg("-B")
            .arg("-s")
            .arg(&self.settings)
            .arg(format!(
                "-Dmaven.repo.local={}",
                self.local_repository.display()
            ))
            .args(args);
        isolate_from_proxies(&mut command);
        command.env_remove("MAVEN_OPTS").env_remove("MAVEN_ARGS");
        let line = format!("mvn {}", args.join(" "));
        ProcessRun::of(line, command, None, MVN_TIMEOUT).await
    }

    /// `mvn dependency:get -Dartifact=<gav>` outside any project.
    pub(crate) async fn dependency_get(&self, gav: &str) -> ProcessRun {
        let artifact = format!("-Dartifact={gav}");
        let args = [DEPENDENCY_GET, artifact.as_str(), "-Dtransitive=false"];
        self.run(self.dir.path(), &args).await
    }
}

/// Central's definition forbids snapshots, and a mirror takes the policies of the
/// repositories it stands for: a profile redefining `central` with snapshots enabled lets
/// the mirror's `public` group serve them, as repository managers document it.
const SNAPSHOTS_PROFILE: &str = "<profiles><profile><id>mirror-snapshots</id><repositories>\
     <repository><id>central</id><url>http://central</url>\
     <releases><enabled>true</enabled></releases><snapshots><enabled>true</enabled></snapshots>\
     </repository></repositories><pluginRepositories><pluginRepository><id>central</id>\
     <url>http://central</url><releases><enabled>true</enabled></releases>\
     <snapshots><enabled>true</enabled></snapshots></pluginRepository></pluginRepositories>\
     </profile></profiles><activeProfiles><activeProfile>mirror-snapshots</activeProfile>\
     </activeProfiles>\n";

fn settings_xml(mirror: &str, credentials: Option<(&str, &str)>) -> String {
    let servers = credentials.map_or_else(String::new, |(user, password)| {
        ["registry-mirror-releases", "registry-mirror-snapshots"]
            .map(|id| {
                format!(
                    "<server><id>{id}</id><username>{user}</username>\
                     <password>{password}</password></server>"
                )
            })
            .concat()
    });
    format!(
        "<settings>\n<mirrors><mirror><id>registry-mirror</id><mirrorOf>*</mirrorOf>\
         <url>{mirror}/maven/public/</url></mirror></mirrors>\n\
         <servers>{servers}</servers>\n{SNAPSHOTS_PROFILE}</settings>\n"
    )
}

/// A tiny jar project: one class, maybe one dependency, deploying to the mirror.
#[derive(Debug)]
pub(crate) struct Project {
    dir: TempDir,
}

impl Project {
    /// `group:artifact:version` with a class `Hello`, depending on `dependency` if given.
    pub(crate) fn new(mirror: &str, gav: (&str, &str, &str), dependency: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("create the project directory");
        let sources = dir.path().join("src/main/java/example");
        std::fs::create_dir_all(&sources).expect("create the source directory");
        std::fs::write(
            sources.join("Hello.java"),
            "package example;\npublic class Hello { public static String greet() { return \"hi\"; } }\n",
        )
        .expect("write the source");
        std::fs::write(dir.path().join("pom.xml"), pom(mirror, gav, dependency))
            .expect("write pom.xml");
        Self { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The jar `mvn package` builds.
    pub(crate) fn built_jar(&self, artifact: &str, version: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("target/{artifact}-{version}.jar"))
    }
}

fn pom(
    mirror: &str,
    (group, artifact, version): (&str, &str, &str),
    dependency: Option<&str>,
) -> String {
    let dependencies = dependency.map_or_else(String::new, |gav| {
        let mut parts = gav.split(':');
        let (g, a, v) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        format!(
            "<dependencies><dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>\
             <version>{v}</version></dependency></dependencies>"
        )
    });
    let plugins: String = PLUGINS
        .iter()
        .map(|(name, version)| {
            format!(
                "<plugin><groupId>org.apache.maven.plugins</groupId>\
                 <artifactId>{name}</artifactId><version>{version}</version></plugin>"
            )
        })
        .collect();
    format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n<modelVersion>4.0.0</modelVersion>\n\
         <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>\n\
         <packaging>jar</packaging>\n\
         <properties><maven.compiler.source>17</maven.compiler.source>\
         <maven.compiler.target>17</maven.compiler.target>\
         <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding></properties>\n\
         {dependencies}\n\
         <distributionManagement>\
         <repository><id>registry-mirror-releases</id><url>{mirror}/maven/releases/</url></repository>\
         <snapshotRepository><id>registry-mirror-snapshots</id><url>{mirror}/maven/snapshots/</url></snapshotRepository>\
         </distributionManagement>\n\
         <build><plugins>{plugins}</plugins></build>\n</project>\n"
    )
}
