//! A TCP proxy between the service and PostgreSQL that a test can switch
//! off: while down it resets every open connection and refuses new ones, as
//! a database that went away would; while black-holed it forwards nothing
//! and closes nothing either, as a hung server or a partitioned network would.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// New connections are forwarded.
    Up,
    /// New connections are refused.
    Down,
    /// Open connections stop forwarding (and stay open); new ones are
    /// accepted and never forwarded.
    Blackhole,
}

#[derive(Clone, Copy, Debug)]
struct State {
    mode: Mode,
    /// Bumped to close every black-holed connection.
    epoch: u64,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<watch::Sender<State>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl FaultProxy {
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(watch::Sender::new(State {
            mode: Mode::Up,
            epoch: 0,
        }));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (s, c) = (state.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut changes = s.subscribe();
                let now = *changes.borrow_and_update();
                let task = match now.mode {
                    Mode::Down => {
                        drop(client);
                        continue;
                    }
                    // Accepted, then silence.
                    Mode::Blackhole => tokio::spawn(async move {
                        let _held = client;
                        closed(&mut changes, now.epoch).await;
                    }),
                    Mode::Up => tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            epoch = blackholed(&mut changes) => {
                                // No more bytes either way; both sockets stay open.
                                let _held = (client, server);
                                closed(&mut changes, epoch).await;
                            }
                        }
                    }),
                };
                let mut tracked = c.lock();
                tracked.retain(|t| !t.is_finished());
                tracked.push(task.abort_handle());
            }
        })
        .abort_handle();
        FaultProxy {
            addr,
            state,
            connections,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones.
    pub fn set_down(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Down;
            s.epoch += 1;
        });
        for connection in self.connections.lock().drain(..) {
            connection.abort();
        }
    }

    /// Open connections stop forwarding bytes in either direction but stay
    /// open; new connections are accepted and never forwarded.
    pub fn set_blackhole(&self) {
        self.state.send_modify(|s| s.mode = Mode::Blackhole);
    }

    /// Forwards new connections again, and closes the black-holed ones
    /// (their conversations lost bytes; PostgreSQL restarting after a hang
    /// would end them too).
    pub fn set_up(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Up;
            s.epoch += 1;
        });
    }

    /// Forwards new connections again, but leaves the black-holed ones open
    /// and silent, as a firewall or NAT that lost their state would: only
    /// the client giving up on them ends them.
    pub fn set_up_leaving_blackholed(&self) {
        self.state.send_modify(|s| s.mode = Mode::Up);
    }
}

/// Resolves, with the epoch then, once the proxy is black-holed (never if
/// the proxy is gone).
async fn blackholed(changes: &mut watch::Receiver<State>) -> u64 {
    let epoch = changes
        .wait_for(|s| s.mode == Mode::Blackhole)
        .await
        .map(|s| s.epoch);
    match epoch {
        Ok(epoch) => epoch,
        Err(_) => std::future::pending().await,
    }
}

/// Resolves once connections black-holed in `epoch` are to be closed, or
/// the proxy is gone.
async fn closed(changes: &mut watch::Receiver<State>, epoch: u64) {
    let _ = changes.wait_for(|s| s.epoch != epoch).await;
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.set_down();
        self.accept.abort();
    }
}
