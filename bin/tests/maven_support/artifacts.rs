//! Artifacts the fixture repository serves, generated in memory: real jars and poms.

use std::io::Write as _;

/// The dependency every resolve test asks for.
pub(crate) const GREETING: Coordinates = Coordinates {
    group: "com.example.fixture",
    artifact: "greeting",
    version: "1.0",
};

/// An artifact whose jar upstream serves tampered, under its true `.sha1`.
pub(crate) const CORRUPT: Coordinates = Coordinates {
    group: "com.example.fixture",
    artifact: "corrupt",
    version: "1.0",
};

/// `groupId:artifactId:version`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coordinates {
    pub(crate) group: &'static str,
    pub(crate) artifact: &'static str,
    pub(crate) version: &'static str,
}

impl Coordinates {
    /// `g:a:v`, as `-Dartifact=` takes it.
    pub(crate) fn gav(&self) -> String {
        format!("{}:{}:{}", self.group, self.artifact, self.version)
    }

    /// The directory of the version in the Maven 2 layout.
    pub(crate) fn dir(&self) -> String {
        format!(
            "{}/{}/{}",
            self.group.replace('.', "/"),
            self.artifact,
            self.version
        )
    }

    /// The path of a file of this version with the given extension.
    pub(crate) fn file(&self, extension: &str) -> String {
        format!(
            "{}/{}-{}.{extension}",
            self.dir(),
            self.artifact,
            self.version
        )
    }

    /// The path of the artifact's listing.
    pub(crate) fn listing(&self) -> String {
        format!(
            "{}/{}/maven-metadata.xml",
            self.group.replace('.', "/"),
            self.artifact
        )
    }

    pub(crate) fn pom(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n\
             <modelVersion>4.0.0</modelVersion>\n<groupId>{}</groupId>\n\
             <artifactId>{}</artifactId>\n<version>{}</version>\n<packaging>jar</packaging>\n\
             </project>\n",
            self.group, self.artifact, self.version
        )
    }

    pub(crate) fn metadata(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n\
             <groupId>{}</groupId>\n<artifactId>{}</artifactId>\n<versioning>\n\
             <latest>{v}</latest>\n<release>{v}</release>\n\
             <versions><version>{v}</version></versions>\n\
             <lastUpdated>20240101000000</lastUpdated>\n</versioning>\n</metadata>\n",
            self.group,
            self.artifact,
            v = self.version
        )
    }
}

/// A jar holding one text file that names the artifact.
pub(crate) fn jar(coordinates: &Coordinates) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("META-INF/MANIFEST.MF", options)
        .expect("zip entry");
    zip.write_all(b"Manifest-Version: 1.0\r\n\r\n")
        .expect("zip write");
    zip.start_file("greeting.txt", options).expect("zip entry");
    writeln!(zip, "hello from {}", coordinates.gav()).expect("zip write");
    zip.finish().expect("finish the jar");
    buffer.into_inner()
}
