//! A TCP proxy that can be cut: a service "down" for whoever connects through it, and for
//! nobody else. Chaos runs put PostgreSQL and RabbitMQ behind one each, so that an outage
//! can be staged without stopping services other programs share; tests use it to cut one
//! component off.

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
    /// Starts a proxy on 127.0.0.1 to `target`, open or cut.
    pub async fn start(target: SocketAddr, open: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(open));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let (flag, tasks) = (Arc::clone(&open), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut tasks = tasks.lock().await;
                // Finished connections leave the set, so it does not grow with every one.
                while tasks.try_join_next().is_some() {}
                tasks.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self {
            address,
            open,
            connections,
        })
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
