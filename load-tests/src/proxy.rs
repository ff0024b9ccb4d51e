//! A TCP proxy that can be cut: a service "down" for whoever connects through it, and for
//! nobody else. Chaos runs put PostgreSQL and RabbitMQ behind one each, so that an outage
//! can be staged without stopping services other programs share; tests use it to cut one
//! component off. It can also be repointed: failover drills use it as the stable address
//! that follows the PostgreSQL primary.

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinSet,
};

/// Why a proxy could not be put in front of a service.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("not a URL a proxy can stand in for: {0}")]
    BadUrl(String),
    #[error("{0} does not resolve")]
    Unresolved(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct TcpProxy {
    pub address: SocketAddr,
    target: Arc<RwLock<SocketAddr>>,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl TcpProxy {
    /// Starts a proxy on 127.0.0.1 to `target`, open or cut.
    pub async fn start(target: SocketAddr, open: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(open));
        let target = Arc::new(RwLock::new(target));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let (flag, tasks, current) = (
            Arc::clone(&open),
            Arc::clone(&connections),
            Arc::clone(&target),
        );
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(target) = current.read().map(|target| *target) else {
                    continue;
                };
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
            target,
            open,
            connections,
        })
    }

    /// A proxy, open or cut, in front of the service `url` names (its host and port, or
    /// `default_port`), and `url` pointed through it.
    pub async fn in_front_of(
        url: &str,
        default_port: u16,
        open: bool,
    ) -> Result<(Self, String), ProxyError> {
        let bad = || ProxyError::BadUrl(url.to_owned());
        let mut through = url::Url::parse(url).map_err(|_| bad())?;
        let host = through.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = through.port().unwrap_or(default_port);
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| ProxyError::Unresolved(format!("{host}:{port}")))?;
        let proxy = Self::start(target, open).await?;
        through
            .set_host(Some(&proxy.address.ip().to_string()))
            .map_err(|_| bad())?;
        through
            .set_port(Some(proxy.address.port()))
            .map_err(|()| bad())?;
        Ok((proxy, through.to_string()))
    }

    /// Drops every connection and refuses new ones.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Sends new connections to `target` from now on and drops those to the old one, as a
    /// Kubernetes Service or a virtual IP moves to a promoted primary.
    pub async fn repoint(&self, target: SocketAddr) {
        if let Ok(mut current) = self.target.write() {
            *current = target;
        }
        self.connections.lock().await.abort_all();
    }

    /// Where new connections go.
    pub fn target(&self) -> Option<SocketAddr> {
        self.target.read().ok().map(|target| *target)
    }
}
