//! The `shmproc` binary end to end: its tables, JSON and exit codes, against segments held
//! by this process, by a child SIGKILLed after creating them, and damaged ones.
//!
//! `gc` is run on named segments only, or as a dry run: a real `gc` over all of `/dev/shm`
//! would also remove other programs' dead segments.

use shmproc::{Barrier, Event, Queue, RLock, Semaphore, Value};
use shmproc_testkit::{Spawn, child_main, say, scribble, unique_name, wait_parent};
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn child_entry() {
    child_main(|role, args| match role {
        // create [name]: creates a queue holding one item, then waits to be killed.
        "create" => {
            let q = Queue::<u32>::create(&args[0], 4).unwrap();
            q.put(9).unwrap();
            say("CREATED");
            wait_parent();
        }
        other => panic!("unknown role {other}"),
    });
}

/// Removes the segment on drop.
struct Name(String);
impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmproc::remove(&self.0);
    }
}

fn shmproc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(args)
        .output()
        .expect("run shmproc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn ls_show_watch_gc_and_rm_end_to_end() {
    let (live, dead, bad, gone) = (
        Name(unique_name("c", "live")),
        Name(unique_name("c", "dead")),
        Name(unique_name("c", "bad")),
        Name(unique_name("c", "gone")),
    );
    let (damaged, other) = (Name(unique_name("c", "dmg")), Name(unique_name("c", "ver")));
    let q = Queue::<u64>::create(&live.0, 16).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let v = Value::<u64>::create(&gone.0, 0).unwrap();
    let mut child = Spawn::new("create")
        .args([dead.0.as_str()])
        .libtest_entry("child_entry")
        .spawn();
    child.expect_line("CREATED", T);
    child.kill();
    std::fs::write(format!("/dev/shm/shmproc.{}", bad.0), vec![0x5Au8; 512]).unwrap();
    // A damaged segment (its element count scribbled) and one of another layout version.
    let opts = shmproc::Options::new().persist(true);
    drop(Queue::<u64>::create_with(&damaged.0, 4, &opts).unwrap());
    drop(Value::<u64>::create_with(&other.0, 1, &opts).unwrap());
    scribble(&damaged.0, 56, &u64::MAX.to_le_bytes());
    scribble(&other.0, 12, &99u32.to_le_bytes());

    // ls: a table with our rows, and JSON with one report each.
    let o = shmproc(&["ls"]);
    assert!(o.status.success(), "{o:?}");
    let table = stdout(&o);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{table}"))
            .to_owned()
    };
    assert!(row(&live.0).contains("queue") && row(&live.0).contains("2/16") && row(&live.0).contains("1 live, 0 dead"));
    assert!(row(&dead.0).contains("1/4") && row(&dead.0).contains("0 live, 1 dead"));
    assert!(row(&bad.0).contains("not a shmproc segment"));
    assert!(row(&gone.0).contains("free"));
    assert!(row(&damaged.0).contains("DAMAGED"));
    assert!(row(&other.0).contains("other layout version 99"));
    let all = json(&shmproc(&["ls", "--json"]));
    let find = |name: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(find(&live.0)["status"]["status"], "ready");
    assert_eq!(find(&live.0)["status"]["state"]["kind"], "queue");
    assert_eq!(find(&live.0)["status"]["state"]["ring"]["items"], 2);
    assert_eq!(find(&bad.0)["status"]["status"], "foreign");
    assert_eq!(find(&damaged.0)["status"]["status"], "damaged");
    assert!(
        find(&damaged.0)["status"]["what"]
            .as_str()
            .unwrap()
            .contains("out of range")
    );
    assert_eq!(find(&other.0)["status"]["status"], "other_version");
    assert_eq!(find(&other.0)["status"]["version"], 99);
    // Neither is garbage: gc leaves what it cannot judge.
    assert_eq!(shmproc(&["gc", &damaged.0, &other.0, "--idle"]).status.code(), Some(3));

    // show: the page and the JSON of one segment; a missing one fails with exit code 1.
    let o = shmproc(&["show", &dead.0]);
    assert!(o.status.success());
    let page = stdout(&o);
    assert!(page.contains("kind:          queue") && page.contains("DEAD"), "{page}");
    let one = json(&shmproc(&["show", &live.0, "--json"]));
    assert_eq!(one["status"]["type_name"], "u64");
    assert_eq!(one["status"]["participants"][0]["pid"], std::process::id());
    let o = shmproc(&["show", "no-such-segment"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-segment"));

    // watch: fill level and rates, as often as asked.
    let o = shmproc(&["watch", &live.0, "--count", "2", "--interval", "0.01"]);
    assert!(o.status.success(), "{o:?}");
    let lines: Vec<_> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("2/16 items"), "{lines:?}");

    // gc: the dead-only segment is garbage, the live and the foreign ones are not.
    let o = shmproc(&["gc", "--dry-run", "--json"]);
    let removed = json(&o)["removed"].clone();
    assert!(
        removed.as_array().unwrap().iter().any(|n| n == dead.0.as_str()),
        "{removed}"
    );
    assert!(
        !removed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == live.0.as_str() || n == bad.0.as_str())
    );
    let o = shmproc(&["gc", &live.0, &bad.0]);
    assert_eq!(o.status.code(), Some(3), "nothing to do: {o:?}");
    let o = shmproc(&["gc", &dead.0, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&o)["removed"][0], dead.0.as_str());
    assert_eq!(shmproc(&["show", &dead.0]).status.code(), Some(1));
    // The live queue still works.
    assert_eq!(q.get().unwrap(), 1);

    // rm: removes whatever it is told to; a name it cannot remove fails with code 1.
    let o = shmproc(&["rm", &bad.0, &gone.0]);
    assert!(o.status.success(), "{o:?}");
    let o = shmproc(&["rm", &bad.0, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["failed"][0][0], bad.0.as_str());
    // A handle whose name was removed keeps working.
    assert!(v.store(5).is_ok());
}

#[test]
fn synchronisation_kinds_in_ls_show_and_watch() {
    let (sem, ev, bar, rl) = (
        Name(unique_name("c", "sem")),
        Name(unique_name("c", "ev")),
        Name(unique_name("c", "bar")),
        Name(unique_name("c", "rl")),
    );
    let s = Semaphore::create(&sem.0, 2).unwrap();
    let _guard = s.acquire();
    let e = Event::create(&ev.0).unwrap();
    e.set();
    let _b = Barrier::create(&bar.0, 3).unwrap();
    let l = RLock::create(&rl.0).unwrap();
    let _held = l.lock().unwrap();

    let o = shmproc(&["ls"]);
    assert!(o.status.success(), "{o:?}");
    let table = stdout(&o);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{table}"))
            .to_owned()
    };
    assert!(
        row(&sem.0).contains("semaphore") && row(&sem.0).contains("1/2 available, 1 held"),
        "{table}"
    );
    assert!(row(&ev.0).contains("event") && row(&ev.0).contains("set"), "{table}");
    assert!(
        row(&bar.0).contains("barrier") && row(&bar.0).contains("0/3 arrived"),
        "{table}"
    );
    assert!(
        row(&rl.0).contains("rlock") && row(&rl.0).contains("held by pid"),
        "{table}"
    );

    let page = stdout(&shmproc(&["show", &sem.0]));
    assert!(page.contains("kind:          semaphore"), "{page}");
    assert!(
        page.contains("1 available of 2 initial") && page.contains("1 permit(s) held"),
        "{page}"
    );
    let one = json(&shmproc(&["show", &sem.0, "--json"]));
    assert_eq!(one["status"]["kind"], "semaphore");
    assert_eq!(one["status"]["state"]["kind"], "semaphore");
    assert_eq!(one["status"]["state"]["permits"]["held"], 1);
    assert_eq!(one["status"]["participants"][0]["in_hand"], 1);
    let one = json(&shmproc(&["show", &rl.0, "--json"]));
    assert_eq!(one["status"]["state"]["kind"], "rlock");
    assert_eq!(one["status"]["state"]["lock"]["state"]["state"], "held");

    let o = shmproc(&["watch", &ev.0, "--count", "1"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), format!("{}: event set", ev.0));
}

#[test]
fn bridge_export_then_import_end_to_end() {
    let Some(server) = shmproc_testkit::nats::NatsServer::start() else {
        return;
    };
    let url = server.url();
    let (src, dst) = (Name(unique_name("c", "bsrc")), Name(unique_name("c", "bdst")));
    let q = shmproc::ByteQueue::create(&src.0, 16).unwrap();
    for i in 0..10 {
        q.put(format!("m{i}").as_bytes()).unwrap();
    }
    q.close();
    let o = shmproc(&["bridge", "export", &src.0, "--server", &url, "--stream", "CLI"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("exported 10 items"), "{o:?}");
    let o = shmproc(&[
        "bridge", "import", &dst.0, "--server", &url, "--stream", "CLI", "--create", "16",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("imported 10 items"), "{o:?}");
    let d = shmproc::ByteQueue::open(&dst.0).unwrap();
    let got: Vec<String> = (0..10)
        .map(|_| String::from_utf8(d.try_get().unwrap()).unwrap())
        .collect();
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(d.try_get(), Err(shmproc::RecvError::Closed), "the end marker closed it");
    // The same stream name with other limits: refused, with the reason.
    let o = shmproc(&[
        "bridge",
        "export",
        &src.0,
        "--server",
        &url,
        "--stream",
        "CLI",
        "--max-messages",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exists with other settings"),
        "{o:?}"
    );
}
