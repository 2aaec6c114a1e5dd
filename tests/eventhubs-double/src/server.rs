//! The running double: a TCP listener speaking AMQP 1.0 with SASL ANONYMOUS, one task per
//! connection, session and link. Each socket is relayed through an in-memory pipe that the
//! double owns, so `kill` can drop every connection at once the way a crashed broker would,
//! and `restart` can listen on the same port again with the same recorder and fault plan.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SaslAnonymousMechanism, SessionAcceptor,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::faults::Faults;
use crate::links::serve_event_link;
use crate::nodes::{serve_reply_link, serve_request_link, HubInfo, ReplyRoutes};
use crate::record::Recorder;

/// How to start a double.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The namespace host the connection string names (never resolved: the client connects to
    /// the custom endpoint and only uses this as the AMQP hostname).
    pub namespace: String,
    pub hub: String,
    pub partition_count: u32,
    /// The max-message-size every sender link is told at attach (the real service: 1 MiB).
    pub max_message_size: u64,
    /// How long the double waits before settling a transfer. A real hub is never closer than
    /// a network round trip, and the client's fe2o3-amqp 0.16 loses a disposition that arrives
    /// before its sender has registered the delivery (the send then waits forever; fixed in
    /// fe2o3-amqp 0.18, which the SDK does not use yet). On localhost that race is real, so
    /// the default (5 ms) models a hub a short round trip away; set zero to provoke it. A
    /// heavily overloaded machine can still stall the client longer than that, now and then.
    pub settle_delay: Duration,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: "double.servicebus.windows.net".into(),
            hub: "clicks".into(),
            partition_count: 4,
            max_message_size: 1024 * 1024,
            settle_delay: Duration::from_millis(5),
        }
    }
}

struct Shared {
    config: DoubleConfig,
    hub: HubInfo,
    recorder: Arc<Recorder>,
    faults: Arc<Faults>,
}

/// A running (or stopped) Event Hubs double.
pub struct Double {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Double {
    /// Starts a double with the default hub (`clicks`, 4 partitions, 1 MiB messages).
    pub async fn start() -> anyhow::Result<Double> {
        Self::start_with(DoubleConfig::default()).await
    }

    pub async fn start_with(config: DoubleConfig) -> anyhow::Result<Double> {
        let hub = HubInfo {
            name: config.hub.clone(),
            partition_count: config.partition_count,
            created_at: SystemTime::now(),
        };
        let shared = Arc::new(Shared {
            config,
            hub,
            recorder: Arc::default(),
            faults: Arc::default(),
        });
        let mut double = Double {
            addr: shared.config.listen,
            shared,
            tasks: Mutex::new(None),
        };
        double.listen(double.shared.config.listen).await?;
        Ok(double)
    }

    async fn listen(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(128)?;
        self.addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        let shared = self.shared.clone();
        // Connections live in a JoinSet owned by the accept task: aborting it drops them all.
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            connections.spawn(serve_socket(stream, shared.clone()));
                        }
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.tasks.lock().unwrap() = Some(tasks);
        Ok(())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The custom endpoint to hand to the client: `amqp://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("amqp://{}", self.addr)
    }

    /// A connection string naming the double's namespace and hub (the key is not checked).
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName=send;SharedAccessKey=ZG91YmxlLWtleQ==;EntityPath={}",
            self.shared.config.namespace, self.shared.config.hub
        )
    }

    pub fn namespace(&self) -> &str {
        &self.shared.config.namespace
    }

    pub fn hub(&self) -> &str {
        &self.shared.config.hub
    }

    /// The log of accepted events (shared across restarts).
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.shared.recorder
    }

    /// The fault plan (shared across restarts).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.shared.faults
    }

    /// Shorthand for `recorder().events()`.
    pub fn events(&self) -> Vec<crate::ReceivedEvent> {
        self.shared.recorder.events()
    }

    /// Shorthand for `recorder().wait_for(n, timeout)`.
    pub async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<crate::ReceivedEvent>> {
        self.shared.recorder.wait_for(n, timeout).await
    }

    /// Whether it is listening now.
    pub fn is_running(&self) -> bool {
        self.tasks.lock().unwrap().is_some()
    }

    /// Stops listening and drops every connection at once, without AMQP close frames: what
    /// the client sees when the broker process dies or the network goes away.
    pub fn kill(&self) {
        if let Some(mut tasks) = self.tasks.lock().unwrap().take() {
            tasks.abort_all();
        }
    }

    /// Listens again on the same address, keeping the recorder and fault plan.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let addr = self.addr;
        // The old listener's socket closes asynchronously after the abort; retry briefly.
        let mut last = None;
        for _ in 0..100 {
            match self.listen(addr).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last.unwrap())
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Relays one socket through a pipe and serves AMQP on the other end of the pipe. Aborting this
/// task drops the socket and the pipe, which ends fe2o3's own connection engine too.
async fn serve_socket(mut stream: TcpStream, shared: Arc<Shared>) {
    let (mut near, far) = tokio::io::duplex(256 * 1024);
    let _amqp = AbortOnDrop(tokio::spawn(serve_connection(far, shared)));
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut near).await;
}

async fn serve_connection(io: tokio::io::DuplexStream, shared: Arc<Shared>) {
    let acceptor = ConnectionAcceptor::builder()
        .container_id("eventhubs-double")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let mut connection: ListenerConnectionHandle = match acceptor.accept(io).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("connection handshake failed: {e}");
            return;
        }
    };
    let routes = ReplyRoutes::default();
    let mut sessions = JoinSet::new();
    let session_acceptor = SessionAcceptor::new();
    while let Some(incoming) = connection.next_incoming_session().await {
        match session_acceptor
            .accept_incoming_session(incoming, &mut connection)
            .await
        {
            Ok(session) => {
                sessions.spawn(serve_session(session, shared.clone(), routes.clone()));
            }
            Err(e) => tracing::debug!("session begin failed: {e}"),
        }
    }
    let _ = connection.close().await;
    sessions.abort_all();
}

async fn serve_session(
    mut session: ListenerSessionHandle,
    shared: Arc<Shared>,
    routes: ReplyRoutes,
) {
    let link_acceptor = LinkAcceptor::builder()
        .max_message_size(shared.config.max_message_size)
        .build();
    let mut links = JoinSet::new();
    while let Some(attach) = session.next_incoming_attach().await {
        let endpoint = match link_acceptor
            .accept_incoming_attach(attach, &mut session)
            .await
        {
            Ok(link) => link,
            Err(e) => {
                tracing::debug!("link attach failed: {e}");
                continue;
            }
        };
        match endpoint {
            LinkEndpoint::Sender(sender) => {
                links.spawn(serve_reply_link(sender, routes.clone()));
            }
            LinkEndpoint::Receiver(receiver) => {
                let address = receiver
                    .target()
                    .as_ref()
                    .and_then(|t| t.address.clone())
                    .unwrap_or_default();
                if address == "$cbs" || address == "$management" {
                    links.spawn(serve_request_link(
                        receiver,
                        address,
                        routes.clone(),
                        shared.hub.clone(),
                        shared.config.settle_delay,
                        shared.recorder.clone(),
                    ));
                } else {
                    links.spawn(serve_event_link(
                        receiver,
                        shared.recorder.clone(),
                        shared.faults.clone(),
                        shared.config.settle_delay,
                    ));
                }
            }
        }
    }
    let _ = session.end().await;
    links.abort_all();
}
