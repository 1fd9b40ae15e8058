//! A local moto server (the AWS API stand-in of `PyPI`'s `moto[server]`) and the real AWS
//! CLI pointed at it, for the secrets-manager tests. Missing either fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A local moto server (the AWS API stand-in of `PyPI`'s `moto[server]`), killed on drop.
pub struct Moto {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Self {
        let version = Command::new("aws").arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "these tests need the aws CLI: pip install awscli"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("these tests need moto_server: pip install 'moto[server]' ({e})")
            });
        let mut moto = Self {
            child,
            url: String::new(),
            _dir: dir,
        };
        let start = Instant::now();
        while moto.url.is_empty() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("Running on http://127.0.0.1:") {
                let rest = &text[at + "Running on ".len()..];
                moto.url = rest.split_whitespace().next().unwrap().to_string();
            } else if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto_server exited ({status}): {text}");
            } else {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "moto_server did not start: {text}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        moto
    }

    /// The environment that points the AWS CLI at this server, and at nothing else.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".into(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Runs the real aws CLI against the server.
    pub fn aws(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut cmd = Command::new("aws");
        cmd.args(args).envs(self.env()).env_remove("AWS_PROFILE");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut pipe, stdin.unwrap_or("").as_bytes()).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    pub fn secret(&self, id: &str) -> serde_json::Value {
        let out = self.aws(
            &[
                "secretsmanager",
                "get-secret-value",
                "--secret-id",
                id,
                "--query",
                "SecretString",
                "--output",
                "text",
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
