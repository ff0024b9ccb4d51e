//! A TCP proxy that can be cut: a service "down" for whoever connects through it, and for
//! nobody else. Chaos runs put PostgreSQL and RabbitMQ behind one each, so that an outage
//! can be staged without stopping services other programs share; tests use it to cut one
//! component off. It can also be repointed: failover drills use it as the stable address
//! that follows the PostgreSQL primary. And it can freeze the connections it carries, as a
//! network partition does: nothing goes through them any more and nobody is told.

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
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
    /// Connections are numbered as they come; those numbered below this are frozen.
    frozen_below: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Starts a proxy on 127.0.0.1 to `target`, open or cut.
    pub async fn start(target: SocketAddr, open: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(open));
        let target = Arc::new(RwLock::new(target));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let frozen_below = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (flag, tasks, current, frozen, counter) = (
            Arc::clone(&open),
            Arc::clone(&connections),
            Arc::clone(&target),
            Arc::clone(&frozen_below),
            Arc::clone(&accepted),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
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
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let frozen = Arc::clone(&frozen);
                tasks.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let (from_client, to_client) = inbound.into_split();
                        let (from_server, to_server) = outbound.into_split();
                        let link = Link {
                            number,
                            frozen_below: frozen,
                        };
                        tokio::join!(
                            link.pump(from_client, to_server),
                            link.pump(from_server, to_client)
                        );
                    }
                });
            }
        });
        Ok(Self {
            address,
            target,
            open,
            connections,
            frozen_below,
            accepted,
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

    /// Every connection open now stops carrying anything, both ways, without being closed:
    /// what either side sends is swallowed. New connections go through.
    pub fn freeze(&self) {
        self.frozen_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
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

/// One proxied connection, which can be frozen.
struct Link {
    number: u64,
    frozen_below: Arc<AtomicU64>,
}

impl Link {
    /// Copies one direction until either side closes; once frozen, reads and drops.
    async fn pump(&self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if self.is_frozen() {
                continue;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        // Across a partition not even the close gets through.
        if !self.is_frozen() {
            let _ = to.shutdown().await;
        }
    }

    fn is_frozen(&self) -> bool {
        self.number < self.frozen_below.load(Ordering::SeqCst)
    }
}
