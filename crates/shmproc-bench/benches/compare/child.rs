//! The child side: each role a re-executed copy of this binary plays.

use super::*;

// ---------------------------------------------------------------------------------------------
// Children, child side

pub(crate) fn child_main(role: &str, args: &[String]) -> ChildResult {
    let arg = |i: usize| -> &str { args.get(i).map_or("", String::as_str) };
    let num = |i: usize| -> usize { arg(i).parse().unwrap_or_else(|_| panic!("argument {i} of {role}")) };
    match role {
        // name size block|block-sentinel|spin
        "q-prod" => with_payload!(num(1), T => child_q_prod::<T>(arg(0), arg(2))),
        // name size
        "q-cons" => with_payload!(num(1), T => child_q_cons::<T>(arg(0))),
        // size batch sentinel; fd 3 = write end
        "stream-prod" => child_stream_prod(num(0), num(1), arg(2) == "1"),
        // size; fd 3 = read end
        "stream-cons" => child_stream_cons(num(0)),
        // name-a name-b spin|block
        "lat-q" => child_lat_q(arg(0), arg(1), arg(2) == "spin"),
        // fd 3 = read end, fd 4 = write end
        "lat-stream" => child_lat_stream(),
        // fd 3 = memfd
        "lat-atomic" => child_lat_atomic(),
        // fd 3 = memfd
        "lat-futex" => child_lat_futex(),
        // stride; fd 3 = memfd of one bare ring
        "bare-prod" => child_bare_prod(num(0)),
        // fd 3 = memfd of two bare rings
        "lat-bare" => child_lat_bare(),
        // name-a name-b
        "lat-event" => child_lat_event(arg(0), arg(1)),
        // name
        "lat-barrier" => child_lat_barrier(arg(0)),
        // name
        "val-inc" => child_val_inc(arg(0)),
        // name size bytes|string
        "msg-prod" => child_msg_prod(arg(0), num(1), arg(2) == "string"),
        _ => Err(format!("unknown role {role:?}").into()),
    }
}

pub(crate) fn child_q_prod<T: Pod>(name: &str, mode: &str) -> ChildResult {
    let q = Queue::<T>::open(name)?;
    let mut template = T::zeroed();
    serve(|n| {
        for i in 0..n {
            if mode == "ref" {
                stamp_bytes(bytemuck::bytes_of_mut(&mut template), i);
                q.put_ref(&template).expect("put_ref");
                continue;
            }
            let item = stamped(&mut template, i);
            if mode == "spin" {
                let mut fails = 0;
                while let Err(e) = q.try_put(item) {
                    assert!(matches!(e, PutError::Full(_)), "try_put: {e}");
                    backoff(&mut fails);
                }
            } else {
                q.put(item).expect("put");
            }
        }
        if mode == "block-sentinel" {
            q.put(stamped(&mut template, SENTINEL)).expect("put");
        }
        String::new()
    })
}

/// Message `i` of the `MessageQueue<String>` rows: `i` in 20 decimal digits, then `x` up to
/// `size` bytes.
/// Makes `s` the message `i` of `size >= 20` bytes: the stamp `i` in 20 digits, then `x`s.
/// The `x`s are written once, so building a message costs 20 bytes, not `size` pushes
/// (pushing 64 Ki chars one by one took longer than sending them).
/// The digits are written in place: `write!` and `replace_range` took half the producer's
/// time at 64 B (perf), which the row would have charged to the queue.
pub(crate) fn fill_string(s: &mut String, size: usize, i: u64) {
    if s.len() != size {
        s.clear();
        s.extend(std::iter::repeat_n('x', size));
    }
    // SAFETY: only ASCII bytes of `s` (its first 20, all `size >= 20` of it being ASCII)
    // are replaced by ASCII digits, so `s` stays valid UTF-8.
    let b = unsafe { s.as_bytes_mut() };
    let mut v = i;
    for d in b[..20].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

pub(crate) fn string_stamp(s: &str, size: usize) -> u64 {
    assert_eq!(s.len(), size, "message length");
    s[..20].parse().expect("stamp")
}

pub(crate) fn child_msg_prod(name: &str, size: usize, typed: bool) -> ChildResult {
    if typed {
        let q = MessageQueue::<String>::open(name)?;
        let mut s = String::with_capacity(size);
        serve(|n| {
            for i in 0..n {
                fill_string(&mut s, size, i);
                q.put(&s).expect("put");
            }
            String::new()
        })
    } else {
        let q = ByteQueue::open(name)?;
        let mut buf = vec![0u8; size];
        serve(|n| {
            for i in 0..n {
                stamp_bytes(&mut buf, i);
                q.put(&buf).expect("put");
            }
            String::new()
        })
    }
}

pub(crate) fn child_q_cons<T: Pod>(name: &str) -> ChildResult {
    let q = Queue::<T>::open(name)?;
    serve(|_| {
        let (mut count, mut sum) = (0u64, 0u64);
        loop {
            let v = check(&q.get().expect("get"));
            if v == SENTINEL {
                break;
            }
            count += 1;
            sum = sum.wrapping_add(v);
        }
        format!("{count} {sum}")
    })
}

pub(crate) fn child_stream_prod(size: usize, batch: usize, sentinel: bool) -> ChildResult {
    let mut w = File::from(inherited(3));
    let mut buf = vec![0u8; size * batch];
    serve(|n| {
        let mut i = 0;
        while i < n {
            let k = (n - i).min(batch as u64) as usize;
            for (j, m) in buf[..k * size].chunks_exact_mut(size).enumerate() {
                stamp_bytes(m, i + j as u64);
            }
            w.write_all(&buf[..k * size]).expect("write");
            i += k as u64;
        }
        if sentinel {
            stamp_bytes(&mut buf[..size], SENTINEL);
            w.write_all(&buf[..size]).expect("write");
        }
        String::new()
    })
}

pub(crate) fn child_stream_cons(size: usize) -> ChildResult {
    let mut r = File::from(inherited(3));
    let mut buf = vec![0u8; size];
    serve(|_| {
        let (mut count, mut sum) = (0u64, 0u64);
        loop {
            r.read_exact(&mut buf).expect("read");
            let v = check_bytes(&buf);
            if v == SENTINEL {
                break;
            }
            count += 1;
            sum = sum.wrapping_add(v);
        }
        format!("{count} {sum}")
    })
}

pub(crate) fn child_lat_q(a: &str, b: &str, spin: bool) -> ChildResult {
    let (qa, qb) = (Queue::<u64>::open(a)?, Queue::<u64>::open(b)?);
    serve(|n| {
        for _ in 0..n {
            if spin {
                let mut fails = 0;
                let v = loop {
                    match qa.try_get() {
                        Ok(v) => break v,
                        Err(GetError::Empty) => backoff(&mut fails),
                        Err(e) => panic!("try_get: {e}"),
                    }
                };
                qb.try_put(v).expect("try_put");
            } else {
                qb.put(qa.get().expect("get")).expect("put");
            }
        }
        String::new()
    })
}

pub(crate) fn child_lat_stream() -> ChildResult {
    let (mut r, mut w) = (File::from(inherited(3)), File::from(inherited(4)));
    let mut buf = [0u8; 8];
    serve(|n| {
        for _ in 0..n {
            r.read_exact(&mut buf).expect("read");
            w.write_all(&buf).expect("write");
        }
        String::new()
    })
}

pub(crate) fn child_lat_atomic() -> ChildResult {
    let page = Page::map(&inherited(3));
    let w = page.word();
    serve(|n| {
        for _ in 0..n {
            // Wait for the parent's odd value, answer with the next even one.
            let mut fails = 0;
            loop {
                let v = w.load(Ordering::Acquire);
                if v & 1 == 1 {
                    w.store(v + 1, Ordering::Release);
                    break;
                }
                backoff(&mut fails);
            }
        }
        String::new()
    })
}

pub(crate) fn child_lat_futex() -> ChildResult {
    let page = Page::map(&inherited(3));
    let (ping, pong) = (page.futex_word(0), page.futex_word(1));
    let mut seen = ping.load(Ordering::Acquire);
    serve(|n| {
        for _ in 0..n {
            // Sleep until the parent's next ping, answer it on `pong`.
            loop {
                let v = ping.load(Ordering::Acquire);
                if v != seen {
                    seen = v;
                    break;
                }
                futex_wait(ping, v);
            }
            pong.store(seen, Ordering::Release);
            futex_wake(pong);
        }
        String::new()
    })
}

pub(crate) fn child_val_inc(name: &str) -> ChildResult {
    let v = Value::<u64>::open(name)?;
    serve(|n| {
        for _ in 0..n {
            *v.lock().expect("lock") += 1;
        }
        String::new()
    })
}

pub(crate) fn child_lat_event(a: &str, b: &str) -> ChildResult {
    let (ping, pong) = (shmproc::Event::open(a)?, shmproc::Event::open(b)?);
    serve(|n| {
        for _ in 0..n {
            // Clear `ping` before answering: the parent sets it again only after `pong`.
            ping.wait();
            ping.clear();
            pong.set();
        }
        String::new()
    })
}

/// Answers with the number of ops it led.
pub(crate) fn child_lat_barrier(name: &str) -> ChildResult {
    let barrier = shmproc::Barrier::open(name)?;
    serve(|n| {
        let leaders: u64 = (0..n)
            .map(|_| u64::from(barrier.wait().expect("barrier wait").is_leader()))
            .sum();
        leaders.to_string()
    })
}
