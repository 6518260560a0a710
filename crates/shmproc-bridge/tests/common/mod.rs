//! The bridge tests' helpers: a server of their own (`shmproc_testkit::nats`), a runtime,
//! queue names.
#![allow(dead_code)]

pub use shmproc_testkit::nats::NatsServer;

/// A multi-threaded runtime for one test or child.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A local queue's name, unique to this process and call, removed on drop.
pub struct Name(pub String);

impl Name {
    pub fn new(middle: &str) -> Name {
        Name(shmproc_testkit::unique_name("br", middle))
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmproc::remove(&self.0);
    }
}
