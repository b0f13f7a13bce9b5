//! [`PgCluster`]: a throwaway PostgreSQL cluster owned by one test, so the
//! test can stop it (as a crash would: `pg_ctl -m immediate stop`) and start
//! it again on the same port and data directory.
//!
//! ```ignore
//! let pg = PgCluster::start();          // initdb into a temp dir, start on a free port
//! let url = pg.url();                   // postgres://postgres@127.0.0.1:<port>/postgres
//! pg.stop();                            // immediate stop: connections are cut
//! pg.start_again();                     // same port, same data
//! // dropped: stopped and removed
//! ```
//!
//! The binaries are found like `scripts/postgres.sh` finds them: `pg_ctl` on
//! `PATH`, then `/usr/lib/postgresql/*/bin`, newest first. As root, they run
//! as the `postgres` user (`runuser -u postgres --`), which owns the
//! directory. Without them the test fails with a message saying how to get
//! them (`scripts/test.sh` installs PostgreSQL). The methods block (they run
//! `pg_ctl -w`): in async tests call them from `spawn_blocking` or accept the
//! short block, on a multi-threaded runtime.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

use tempfile::TempDir;

/// A private PostgreSQL cluster on 127.0.0.1; stopped and removed on drop.
pub struct PgCluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Initialises a cluster in a temporary directory and starts it on a
    /// free loopback port. `fsync=off`: nothing here must survive a power
    /// cut, but commits are still written before they are acknowledged, so
    /// they survive [`PgCluster::stop`] (a process crash, not a machine one).
    pub fn start() -> Self {
        let bin = find_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under \
                 /usr/lib/postgresql/*/bin: install PostgreSQL (scripts/test.sh does, e.g. \
                 `apt-get install postgresql`)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir for the PostgreSQL cluster");
        let as_postgres = is_root();
        if as_postgres {
            if !run(Command::new("id").arg("postgres")) {
                assert!(
                    run(Command::new("useradd").args(["--system", "--no-create-home", "postgres"])),
                    "could not create the postgres user"
                );
            }
            assert!(
                run(Command::new("chown").arg("postgres").arg(dir.path())),
                "could not give the cluster directory to the postgres user"
            );
        }
        let port = free_port();
        let cluster = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// The URL of the cluster's `postgres` database (superuser, no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`pg_ctl -m immediate stop`): open
    /// connections are cut, new ones are refused.
    pub fn stop(&self) {
        let data = self.data();
        self.pg(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the server (again) on the same port and data directory, and
    /// waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server binaries (as `postgres` when we are root),
    /// panicking with its output on failure.
    fn pg(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", exe.display()));
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", path(&data), "-m", "immediate", "stop"];
        // Already stopped is fine; the temp dir goes with `self.dir`.
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

/// The directory holding `initdb` and `pg_ctl`: `PATH` first, then the
/// newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    on_path
        .into_iter()
        .chain(versioned.into_iter().map(|(_, p)| p))
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(command: &mut Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
