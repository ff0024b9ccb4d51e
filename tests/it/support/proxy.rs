//! A TCP proxy that can be cut, to make a service "unreachable" for one component only.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinSet,
};

pub struct TcpProxy {
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl TcpProxy {
    /// Starts a proxy to `target`, open or cut.
    pub async fn start(target: SocketAddr, open: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let open = Arc::new(AtomicBool::new(open));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let (flag, tasks) = (Arc::clone(&open), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tasks.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            address,
            open,
            connections,
        }
    }

    /// Drops every connection and refuses new ones.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
