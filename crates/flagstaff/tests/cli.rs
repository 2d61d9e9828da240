//! The `flagstaff` binary as a user runs it: help, first start, restart, graceful shutdown,
//! Postgres through --database-url, and the README's curl tour run verbatim.

use std::path::Path;
use std::process::Command;

use flagstaff_testkit::conformance::workspace_root;

mod support;
use support::{BIN, Server, free_port};

fn get_status(url: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(url)
            .header("Authorization", token)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

fn printed_token(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .find(|w| w.starts_with("api-") && w.len() == 40)
        .map(String::from)
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "FLAGSTAFF_LISTEN",
        "127.0.0.1:8030",
        "--data-dir",
        "FLAGSTAFF_DATA_DIR",
        "--database-url",
        "FLAGSTAFF_DATABASE_URL",
        "FLAGSTAFF_BOOTSTRAP_TOKEN",
        "--redis-ca-file",
        "FLAGSTAFF_REDIS_CA_FILE",
    ] {
        assert!(
            help.contains(needle),
            "serve --help lacks {needle}:\n{help}"
        );
    }
    let top = String::from_utf8_lossy(&Command::new(BIN).arg("--help").output().unwrap().stdout)
        .to_string();
    assert!(top.contains("serve") && top.contains("openapi"), "{top}");
}

#[test]
fn first_start_prints_a_working_token_once_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start(
        &["--listen", &listen, "--data-dir", data.to_str().unwrap()],
        &[],
    );
    server.wait_ready();
    let token = printed_token(&server.output())
        .unwrap_or_else(|| panic!("no token printed:\n{}", server.output()));
    let projects = format!("http://{listen}/api/v2/projects");
    assert_eq!(get_status(&projects, &token), 200);
    assert_eq!(
        get_status(&projects, "api-00000000-0000-4000-8000-000000000000"),
        401
    );
    let (status, log) = server.terminate();
    assert!(
        status.success(),
        "SIGTERM should stop cleanly, got {status}:\n{log}"
    );
    assert!(data.join("flagstaff.db").exists());

    // Restarting on the same data keeps the account and prints no new token.
    let mut again = Server::start(
        &[],
        &[
            ("FLAGSTAFF_LISTEN", &listen),
            ("FLAGSTAFF_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    again.wait_ready();
    assert_eq!(
        printed_token(&again.output()),
        None,
        "a token was printed again:\n{}",
        again.output()
    );
    assert_eq!(get_status(&projects, &token), 200);
    again.terminate();
}

#[test]
fn bad_bootstrap_token_and_database_url_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("FLAGSTAFF_BOOTSTRAP_TOKEN", "not-a-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api-<uuid>"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A Redis CA file that is missing, or holds no certificate, stops the start with a
    // message naming the flag.
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for (ca_file, says) in [
        (
            dir.path().join("missing.pem"),
            "cannot read --redis-ca-file",
        ),
        (not_pem, "no PEM certificate"),
    ] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--redis-ca-file",
                ca_file.to_str().unwrap(),
            ])
            .env_remove("FLAGSTAFF_BOOTSTRAP_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--database-url", "mysql://x"])
        .env_remove("FLAGSTAFF_BOOTSTRAP_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sqlite://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serves_on_postgres_with_database_url() {
    let Ok(url) = std::env::var("FLAGSTAFF_TEST_DATABASE_URL") else {
        eprintln!("skipping: FLAGSTAFF_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        flagstaff_store::PgStore::connect(&url, Some(&schema))
            .await
            .expect("create schema")
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let token = "api-00000000-0000-4000-8000-0000000000cc";
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start(
        &["--listen", &listen, "--database-url", &db_url],
        &[
            ("FLAGSTAFF_BOOTSTRAP_TOKEN", token),
            // With Postgres every node needs the same key for integration secrets.
            (
                "FLAGSTAFF_SECRET_KEY",
                "6a1f0c3e5b7d9f21436587a9bcdef0123456789abcdef0123456789abcdef012",
            ),
        ],
    );
    server.wait_ready();
    assert!(server.output().contains("postgres"), "{}", server.output());
    assert_eq!(
        get_status(&format!("http://{listen}/api/v2/projects"), token),
        200
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    rt.block_on(async {
        flagstaff_store::PgStore::drop_schema(&url, &schema)
            .await
            .unwrap()
    });
}

/// The shell block after `<!-- tour -->` in the README, run as written.
fn readme_tour(readme: &Path) -> (String, String) {
    let text = std::fs::read_to_string(readme).unwrap();
    let start = text
        .find("<!-- tour -->")
        .expect("README has a <!-- tour --> marker");
    let rest = &text[start..];
    let open = rest
        .find("```sh\n")
        .expect("a ```sh block follows the tour marker")
        + 6;
    let close = rest[open..].find("```").unwrap();
    let script = rest[open..open + close].to_string();
    let token = script
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .expect("the tour sets TOKEN=")
        .trim()
        .to_string();
    (script, token)
}

#[test]
fn readme_curl_tour_works_verbatim() {
    let (script, token) = readme_tour(&workspace_root().join("README.md"));
    assert!(
        script.contains("127.0.0.1:8030"),
        "the tour talks to the default address"
    );
    if std::net::TcpStream::connect("127.0.0.1:8030").is_ok() {
        panic!("port 8030 is taken: stop the server running there to run the README tour test");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("FLAGSTAFF_BOOTSTRAP_TOKEN", &token)],
    );
    server.wait_ready();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    server.terminate();
    assert!(
        out.status.success(),
        "the README tour failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("\"turned on the flag\""),
        "the tour's audit log step shows the toggle:\n{stdout}"
    );
}
