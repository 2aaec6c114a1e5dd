//! Stamps the git commit into the binary (`collector --version`). Outside a git checkout (a
//! source tarball) COLLECTOR_COMMIT from the environment, else "unknown".

use std::process::Command;

fn main() {
    let commit = std::env::var("COLLECTOR_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=COLLECTOR_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=COLLECTOR_COMMIT");
    // A commit or checkout moves HEAD's reflog.
    for path in ["../.git/HEAD", "../.git/logs/HEAD"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
