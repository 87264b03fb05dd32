//! A TCP fault proxy for partition tests: sits between a process and RabbitMQ
//! or Redis on loopback and can pass, stall, slow or cut the traffic.
//!
//! - `pass`: bytes flow both ways;
//! - `stall`: bytes stop flowing both ways but the connections stay open (a
//!   partition as the peers see it: silence, heartbeats missed);
//! - `slow(d)`: every chunk waits `d` before it is forwarded (a slow service);
//! - `cut`: every open connection is shut down and new ones are closed at once.
//!
//! Plain threads, no runtime: tests drive it from synchronous code.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const PASS: u8 = 0;
const STALL: u8 = 1;
const CUT: u8 = 2;

struct Shared {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    stop: AtomicBool,
    /// Both sockets of every open connection, for `cut`.
    open: Mutex<Vec<(TcpStream, TcpStream)>>,
    /// Connections accepted so far (a reconnect shows up here).
    accepted: AtomicU64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(PASS),
            delay_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let upstream = upstream.to_string();
        let sh = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if sh.mode.load(Ordering::SeqCst) == CUT {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                sh.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                sh.open.lock().unwrap().push((client.try_clone().unwrap(), server.try_clone().unwrap()));
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let sh = sh.clone();
                    thread::spawn(move || pump(from, to, &sh));
                }
            }
        });
        FaultProxy { addr, shared }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn pass(&self) {
        self.shared.delay_ms.store(0, Ordering::SeqCst);
        self.shared.mode.store(PASS, Ordering::SeqCst);
    }

    pub fn stall(&self) {
        self.shared.mode.store(STALL, Ordering::SeqCst);
    }

    pub fn slow(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
        self.shared.mode.store(PASS, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.shared.mode.store(CUT, Ordering::SeqCst);
        for (a, b) in self.shared.open.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, sh: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold the chunk while stalled; a cut while holding drops it.
        loop {
            match sh.mode.load(Ordering::SeqCst) {
                STALL => thread::sleep(Duration::from_millis(10)),
                CUT => {
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                _ => break,
            }
        }
        let delay = sh.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
