use serde_json::json;

use super::*;

fn origins() -> AllowedOrigins {
    AllowedOrigins::new([
        Url::parse("https://index.test/simple/").unwrap(),
        Url::parse("https://files.test/").unwrap(),
    ])
}

fn page_url() -> Url {
    Url::parse("https://index.test/simple/demo/").unwrap()
}

fn read(raw: &str, content_type: Option<&str>) -> Result<ProjectPage, String> {
    let (url, origins) = (page_url(), origins());
    let source = PageSource {
        url: &url,
        content_type,
        origins: &origins,
    };
    project_page(raw.as_bytes(), "demo", &source)
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

#[test]
fn html_page_keeps_attributes_and_resolves_relative_links() {
    let page = format!(
        r#"<html><body>
        <a href="../../packages/demo-1.0.tar.gz#sha256={a}" data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a>
        <a href="https://files.test/p/demo-1.0-py3-none-any.whl#sha256={b}"
           data-yanked="broken build" data-dist-info-metadata="sha256={c}">demo-1.0-py3-none-any.whl</a>
        <a href="/other/demo-0.9.zip" data-yanked data-core-metadata="true">demo-0.9.zip</a>
        </body></html>"#,
        a = sha('a'),
        b = sha('b'),
        c = sha('c')
    );
    let page = read(&page, Some("text/html")).unwrap();
    let [sdist, wheel, zip] = page.files.as_slice() else {
        panic!("{page:?}")
    };

    assert_eq!(sdist.filename, "demo-1.0.tar.gz");
    assert_eq!(sdist.url, "https://index.test/packages/demo-1.0.tar.gz");
    assert_eq!(sdist.hashes["sha256"], sha('a'));
    assert_eq!(sdist.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!((&sdist.yanked, &sdist.core_metadata), (&None, &None));

    assert_eq!(wheel.url, "https://files.test/p/demo-1.0-py3-none-any.whl");
    assert_eq!(wheel.yanked.as_deref(), Some("broken build"));
    assert_eq!(wheel.core_metadata.as_ref().unwrap()["sha256"], sha('c'));

    assert_eq!(zip.url, "https://index.test/other/demo-0.9.zip");
    assert_eq!(zip.yanked.as_deref(), Some(""));
    assert_eq!(zip.core_metadata, Some(Hashes::new()));
    assert!(zip.hashes.is_empty());
}

#[test]
fn html_base_element_moves_relative_links() {
    let page = r#"<head><base href="https://files.test/root/"></head>
        <a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>"#;
    let page = read(page, None).unwrap();
    assert_eq!(page.files[0].url, "https://files.test/root/demo-1.0.tar.gz");
}

#[test]
fn unsafe_files_are_left_out() {
    let page = format!(
        r#"<a href="https://evil.test/demo-1.0.tar.gz#sha256={a}">foreign host</a>
        <a href="ftp://index.test/demo-1.0.tar.gz">other scheme</a>
        <a href="demo-1.0.tar.gz#sha256=nothex">bad hash</a>
        <a href="..%2f..%2fetc%2fpasswd">traversal</a>
        <a href="%2e%2e">dots</a>
        <a>no href</a>
        <a href="javascript:alert(1)">script</a>
        <a href="demo-2.0.tar.gz#egg=demo">kept</a>
        <a href="demo-2.0.tar.gz">duplicate</a>"#,
        a = sha('a')
    );
    let page = read(&page, Some("text/html; charset=utf-8")).unwrap();
    let names: Vec<_> = page.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["demo-2.0.tar.gz"]);
}

#[test]
fn json_page_keeps_pep_691_and_700_fields() {
    let doc = json!({
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "versions": ["1.0", "2.0"],
        "files": [
            {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
             "hashes": {"sha256": sha('a'), "md5": "0f".repeat(16)},
             "requires-python": ">=3.8", "yanked": true, "size": 10,
             "upload-time": "2024-01-01T00:00:00.000000Z"},
            {"filename": "demo-2.0-py3-none-any.whl",
             "url": "https://files.test/demo-2.0-py3-none-any.whl",
             "hashes": {"sha256": sha('b')}, "yanked": "security",
             "core-metadata": {"sha256": sha('c')}, "dist-info-metadata": true},
            {"filename": "demo-2.0.zip", "url": "https://files.test/demo-2.0.zip",
             "hashes": {}, "dist-info-metadata": true, "yanked": false},
            {"filename": "../evil.whl", "url": "https://files.test/evil.whl", "hashes": {}},
            {"filename": "demo-3.0.zip", "url": "https://evil.test/demo-3.0.zip", "hashes": {}},
            {"filename": "demo-4.0.zip", "url": "https://files.test/x", "hashes": {"sha256": 5}},
            {"filename": 7}
        ]
    });
    let page = read(&doc.to_string(), Some(JSON_V1)).unwrap();
    let [sdist, wheel, zip] = page.files.as_slice() else {
        panic!("{page:?}")
    };
    assert_eq!(
        page.versions.as_deref(),
        Some(&["1.0".into(), "2.0".into()][..])
    );

    assert_eq!(sdist.url, "https://index.test/packages/demo-1.0.tar.gz");
    assert_eq!(sdist.hashes.len(), 2);
    assert_eq!(sdist.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!(sdist.yanked.as_deref(), Some(""));
    assert_eq!(sdist.size, Some(10));
    assert_eq!(
        sdist.upload_time.as_deref(),
        Some("2024-01-01T00:00:00.000000Z")
    );

    assert_eq!(wheel.yanked.as_deref(), Some("security"));
    assert_eq!(wheel.core_metadata.as_ref().unwrap()["sha256"], sha('c'));
    assert_eq!(zip.core_metadata, Some(Hashes::new()));
    assert_eq!(zip.yanked, None);
}

#[test]
fn malformed_pages_are_errors() {
    for (raw, content_type) in [
        ("<html>", Some(JSON_V1)),
        ("{\"files\": []}", Some(JSON_V1)),
        (
            "{\"meta\": {\"api-version\": \"2.0\"}, \"files\": []}",
            Some(JSON_V1),
        ),
        ("{\"meta\": {\"api-version\": \"1.0\"}, \"files\": 3}", None),
    ] {
        assert!(read(raw, content_type).is_err(), "{raw}");
    }
    let (url, origins) = (page_url(), origins());
    let source = PageSource {
        url: &url,
        content_type: Some("text/html"),
        origins: &origins,
    };
    assert!(project_page(b"<a href=\"\xff\">", "demo", &source).is_err());
    assert!(read("no links here", Some("text/html"))
        .unwrap()
        .files
        .is_empty());
}

#[test]
fn root_listing_in_both_formats() {
    let html = r#"<a href="/simple/Demo.App/">Demo.App</a><a href="/simple/x/">../x</a>
        <a href="/simple/b/">b</a>"#;
    let root = root_index(html.as_bytes(), Some("text/html")).unwrap();
    assert_eq!(root.projects, ["Demo.App", "b"]);
    let doc = json!({"meta": {"api-version": "1.0"},
                     "projects": [{"name": "Demo.App"}, {"name": "<b>"}]});
    let root = root_index(doc.to_string().as_bytes(), Some(JSON_V1)).unwrap();
    assert_eq!(root.projects, ["Demo.App"]);
    assert!(root_index(b"{\"meta\": {\"api-version\": \"1.0\"}}", Some(JSON_V1)).is_err());
}
