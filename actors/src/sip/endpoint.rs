//! The SIP endpoint: the sockets (UDP and TCP) around the sans-IO [`TransactionLayer`].
//!
//! One tokio task owns the layer. Each datagram (or framed TCP message) is parsed once; a
//! message that cannot be parsed is answered `400`/`505` statelessly when a response can be
//! addressed, and dropped otherwise. Retransmissions are absorbed by the layer and never
//! reach the transaction user (TU). Everything the TU must hear of is handed to a
//! [`Deliver`] callback; the TU talks back through the cloneable [`EndpointHandle`]. No
//! actix here: the switch's router actor wraps the callback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::admission::CallAdmission;
use super::message::{self, Request, Response, SipMessage, Transport, Via};
use super::transaction::{Event, LayerConfig, TransactionKey, TransactionLayer};

/// Largest UDP datagram read (RFC 3261 §18.1.1 allows up to 65 535 bytes over UDP).
pub const MAX_DATAGRAM: usize = 65_535;
/// Socket buffers asked for on the SIP UDP socket: a burst of call set-ups must queue in
/// the kernel rather than be dropped and retransmitted (the kernel caps it at rmem_max).
pub const UDP_SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// A TCP connection with nothing to say for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to wait for a TCP connection to a peer we must send to.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events handed to the TU and not yet taken by it, above which new INVITEs are refused
/// here with 503 (overload: shedding new calls keeps the calls in progress working
/// instead of letting retransmissions pile up).
pub const MAX_BACKLOG: usize = 4096;
/// At most one "refusing calls" warning in this interval.
const SHED_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// `Retry-After` of the 503 sent under overload, in seconds.
pub const OVERLOAD_RETRY_AFTER: u32 = 5;
/// Granularity of the layer's timers when it has none armed.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What the TU is told.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A new request, to be answered with [`EndpointHandle::respond`] on `key`.
    Request {
        key: TransactionKey,
        request: Request,
        src: SocketAddr,
        transport: Transport,
    },
    /// An ACK for a 2xx (routed by dialog).
    Ack { request: Request, src: SocketAddr },
    /// A CANCEL for the pending INVITE `invite` (the CANCEL itself is already answered).
    Cancel {
        invite: TransactionKey,
        request: Request,
    },
    /// A response on one of our client transactions.
    Response {
        key: TransactionKey,
        response: Response,
    },
    /// A response that matched no transaction (a late 2xx retransmission).
    StrayResponse { response: Response, src: SocketAddr },
    /// Timer B/F/H/L fired for `key`.
    Timeout { key: TransactionKey },
    /// The transport could not deliver for `key`.
    TransportError { key: TransactionKey },
    /// The transaction is gone; owners may forget it.
    Terminated { key: TransactionKey },
}

/// The TU's callback; called on the endpoint task, so it must be quick (send to a mailbox).
pub type Deliver = Arc<dyn Fn(Inbound) + Send + Sync>;

enum Command {
    Request {
        request: Request,
        dest: SocketAddr,
        transport: Transport,
    },
    Respond {
        key: TransactionKey,
        response: Response,
    },
    Ack2xx {
        invite: TransactionKey,
        ack: Request,
        dest: SocketAddr,
    },
    Stateless {
        message: SipMessage,
        dest: SocketAddr,
        transport: Transport,
    },
    Shutdown,
}

/// Counters readable without asking the task.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub malformed: AtomicU64,
    pub answered_malformed: AtomicU64,
    /// New INVITEs refused with 503 because the TU was behind.
    pub shed: AtomicU64,
    /// New INVITEs refused with 503 above `[sip] max_calls_per_second`.
    pub rate_limited: AtomicU64,
    /// Events delivered to the TU that it has not taken yet.
    pub backlog: AtomicUsize,
    /// Live transactions (including those only absorbing retransmissions).
    pub transactions: AtomicUsize,
}

/// Cheap to clone; every method is non-blocking.
#[derive(Clone)]
pub struct EndpointHandle {
    commands: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    advertise: Arc<str>,
    stats: Arc<EndpointStats>,
}

impl EndpointHandle {
    /// Starts a client transaction. The request's top Via must carry a fresh branch (see
    /// [`EndpointHandle::via`]); its transaction key is `Client { branch, method }`.
    pub fn send_request(&self, request: Request, dest: SocketAddr, transport: Transport) {
        let _ = self.commands.send(Command::Request {
            request,
            dest,
            transport,
        });
    }

    /// Answers the server transaction `key`.
    pub fn respond(&self, key: &TransactionKey, response: Response) {
        let _ = self.commands.send(Command::Respond {
            key: key.clone(),
            response,
        });
    }

    /// Sends the ACK for a 2xx received on `invite`; 2xx retransmissions are then answered
    /// by the layer with this ACK.
    pub fn ack_2xx(&self, invite: &TransactionKey, ack: Request, dest: SocketAddr) {
        let _ = self.commands.send(Command::Ack2xx {
            invite: invite.clone(),
            ack,
            dest,
        });
    }

    /// Sends a message outside any transaction.
    pub fn send_stateless(&self, message: SipMessage, dest: SocketAddr, transport: Transport) {
        let _ = self.commands.send(Command::Stateless {
            message,
            dest,
            transport,
        });
    }

    /// Stops the endpoint task; sockets close.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// The bound address (UDP and TCP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The host written into Via and Contact.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// A top Via for a new request of ours, with a fresh branch.
    pub fn via(&self, transport: &Transport) -> Via {
        let mut via = Via::new(
            transport.clone(),
            &self.advertise,
            Some(self.local.port()),
            &message::new_branch(),
        );
        via.rport = Some(None);
        via
    }

    /// `sip:user@advertise:port` for Contact headers.
    pub fn contact_uri(&self, user: &str, transport: &Transport) -> String {
        let suffix = if transport.is_reliable() {
            format!(";transport={}", transport.as_str().to_ascii_lowercase())
        } else {
            String::new()
        };
        if user.is_empty() {
            format!("sip:{}:{}{suffix}", self.advertise, self.local.port())
        } else {
            format!(
                "sip:{user}@{}:{}{suffix}",
                self.advertise,
                self.local.port()
            )
        }
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// The TU calls this for every event it takes from the [`Deliver`] callback.
    pub fn taken(&self) {
        let _ = self
            .stats
            .backlog
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// How the endpoint runs.
#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    pub layer: LayerConfig,
    /// New calls (INVITEs outside a dialog) admitted per second; 0: no limit.
    pub max_calls_per_second: u32,
}

/// Binds nothing itself: takes the bound sockets, spawns the endpoint task and its TCP
/// acceptor, and returns the handle. Must be called inside a tokio runtime.
pub fn spawn(
    udp: UdpSocket,
    tcp: TcpListener,
    advertise: &str,
    config: EndpointConfig,
    deliver: Deliver,
) -> std::io::Result<EndpointHandle> {
    let local = udp.local_addr()?;
    let sock = socket2::SockRef::from(&udp);
    for (what, result) in [
        ("receive", sock.set_recv_buffer_size(UDP_SOCKET_BUFFER)),
        ("send", sock.set_send_buffer_size(UDP_SOCKET_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::warn!("cannot enlarge the SIP UDP {what} buffer: {e}");
        }
    }
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(EndpointStats::default());
    let handle = EndpointHandle {
        commands,
        local,
        advertise: Arc::from(advertise),
        stats: stats.clone(),
    };
    let acceptor = tokio::spawn(accept_loop(tcp, tcp_tx.clone()));
    let task = EndpointTask {
        layer: TransactionLayer::new(config.layer),
        admission: CallAdmission::new(config.max_calls_per_second, Instant::now()),
        shed_warned_at: None,
        udp: Arc::new(udp),
        connections: HashMap::new(),
        tcp_events: tcp_tx,
        deliver,
        stats,
    };
    tokio::spawn(async move {
        task.run(command_rx, tcp_rx).await;
        acceptor.abort();
    });
    Ok(handle)
}

/// Events from TCP connection tasks to the endpoint task.
enum TcpEvent {
    Connected {
        peer: SocketAddr,
        writer: mpsc::UnboundedSender<Bytes>,
    },
    Message {
        peer: SocketAddr,
        /// Boxed: a message is several times the size of the other events.
        message: Box<SipMessage>,
    },
    /// A framing error: answer if possible; the connection closes.
    Malformed {
        peer: SocketAddr,
        error: message::ParseError,
    },
    Closed {
        peer: SocketAddr,
    },
}

struct EndpointTask {
    layer: TransactionLayer,
    admission: Option<CallAdmission>,
    /// When the last "refusing calls" warning was logged (one per interval at most).
    shed_warned_at: Option<Instant>,
    udp: Arc<UdpSocket>,
    connections: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    tcp_events: mpsc::UnboundedSender<TcpEvent>,
    deliver: Deliver,
    stats: Arc<EndpointStats>,
}

impl EndpointTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut tcp: mpsc::UnboundedReceiver<TcpEvent>,
    ) {
        let udp = self.udp.clone();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        // One timer, moved only when the layer's next deadline moves: most datagrams
        // leave the earliest deadline where it was, and re-arming a fresh timer for each
        // of them showed in profiles.
        let timer = tokio::time::sleep(IDLE_TICK);
        tokio::pin!(timer);
        loop {
            let deadline = tokio::time::Instant::from_std(
                self.layer
                    .next_deadline()
                    .unwrap_or_else(|| Instant::now() + IDLE_TICK),
            );
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            self.stats
                .transactions
                .store(self.layer.len(), Ordering::Relaxed);
            tokio::select! {
                received = udp.recv_from(&mut buf) => match received {
                    Ok((n, src)) => self.on_datagram(&buf[..n], src),
                    // ICMP errors surface here on Linux; they concern one peer, not us.
                    Err(e) => tracing::debug!("SIP UDP receive error: {e}"),
                },
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                Some(event) = tcp.recv() => self.on_tcp(event),
                _ = &mut timer => {
                    let events = self.layer.on_timer(Instant::now());
                    self.dispatch(events);
                }
            }
        }
        tracing::debug!("SIP endpoint stopped");
    }

    fn on_datagram(&mut self, data: &[u8], src: SocketAddr) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        // CRLF keep-alives (RFC 5626 §3.5.1) are answered by nothing over UDP.
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\0'))
        {
            return;
        }
        match message::parse(data) {
            Ok(msg) => self.on_message(msg, src, Transport::Udp),
            Err(error) => self.on_malformed(&error, src, Transport::Udp),
        }
    }

    fn on_message(&mut self, msg: SipMessage, src: SocketAddr, transport: Transport) {
        let events = self.layer.on_message(msg, src, transport, Instant::now());
        self.dispatch(events);
    }

    fn on_malformed(&mut self, error: &message::ParseError, src: SocketAddr, transport: Transport) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%src, "malformed SIP message: {}", error.reason());
        if let Some(mut response) = error.error_response() {
            // Answer as for any request: the top Via stamped with where it really came from
            // (RFC 3581), then sent where that Via says (RFC 3261 §18.2.2).
            let dest = match (&transport, response.top_via().cloned()) {
                (Transport::Udp, Some(mut via)) => {
                    super::headers::stamp_via(&mut via, src);
                    response.headers.replace_first("Via", via.to_string());
                    message::response_target(&via, src)
                }
                _ => src,
            };
            self.stats
                .answered_malformed
                .fetch_add(1, Ordering::Relaxed);
            self.transmit(Bytes::from(response.to_bytes()), dest, transport);
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Request {
                request,
                dest,
                transport,
            } => match self.layer.send_request(request, dest, transport, now) {
                Ok((_, events)) => self.dispatch(events),
                Err(e) => tracing::warn!("cannot send request: {e}"),
            },
            Command::Respond { key, response } => {
                match self.layer.send_response(&key, response, now) {
                    Ok(events) => self.dispatch(events),
                    Err(e) => tracing::debug!(?key, "response not sent: {e}"),
                }
            }
            Command::Ack2xx { invite, ack, dest } => {
                let events = self.layer.ack_2xx(&invite, &ack, dest, now);
                self.dispatch(events);
            }
            Command::Stateless {
                message,
                dest,
                transport,
            } => {
                let event = TransactionLayer::send_stateless(&message, dest, transport);
                self.dispatch(vec![event]);
            }
            Command::Shutdown => {}
        }
    }

    fn on_tcp(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Connected { peer, writer } => {
                self.connections.insert(peer, writer);
            }
            TcpEvent::Message { peer, message } => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                self.on_message(*message, peer, Transport::Tcp);
            }
            TcpEvent::Malformed { peer, error } => self.on_malformed(&error, peer, Transport::Tcp),
            TcpEvent::Closed { peer } => {
                self.connections.remove(&peer);
            }
        }
    }

    fn dispatch(&mut self, events: Vec<Event>) {
        for event in events {
            let inbound = match event {
                Event::Transmit {
                    data,
                    dest,
                    transport,
                } => {
                    self.transmit(data, dest, transport);
                    continue;
                }
                Event::Request {
                    key,
                    request,
                    src,
                    transport,
                } => {
                    let new_call = request.method == super::message::Method::Invite
                        && request.to().is_some_and(|t| t.tag().is_none());
                    if new_call && self.stats.backlog.load(Ordering::Relaxed) > MAX_BACKLOG {
                        self.stats.shed.fetch_add(1, Ordering::Relaxed);
                        self.shed(&key, &request, true);
                        continue;
                    }
                    // The answer to a digest challenge is the same call, counted when it
                    // was challenged (a forged header only buys a cheap 407 or 403).
                    let refused = new_call
                        && request.header("Proxy-Authorization").is_none()
                        && request.header("Authorization").is_none()
                        && self
                            .admission
                            .as_mut()
                            .is_some_and(|a| !a.admit(Instant::now()));
                    if refused {
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        // No Retry-After: RFC 3261 §21.5.4 would have a carrier send this
                        // server nothing at all for that long, not just fewer calls.
                        self.shed(&key, &request, false);
                        continue;
                    }
                    Inbound::Request {
                        key,
                        request,
                        src,
                        transport,
                    }
                }
                Event::Ack { request, src, .. } => Inbound::Ack { request, src },
                Event::Cancel { invite, request } => Inbound::Cancel { invite, request },
                Event::Response { key, response } => Inbound::Response { key, response },
                Event::StrayResponse { response, src } => Inbound::StrayResponse { response, src },
                Event::Timeout { key } => Inbound::Timeout { key },
                Event::TransportError { key } => Inbound::TransportError { key },
                Event::Terminated { key } => Inbound::Terminated { key },
            };
            self.stats.backlog.fetch_add(1, Ordering::Relaxed);
            (self.deliver)(inbound);
        }
    }

    /// Refuses a new call while the TU is behind (see [`MAX_BACKLOG`]) or above the
    /// admitted rate.
    fn shed(&mut self, key: &TransactionKey, request: &Request, retry_after: bool) {
        let now = Instant::now();
        if self
            .shed_warned_at
            .is_none_or(|at| now.duration_since(at) >= SHED_WARNING_INTERVAL)
        {
            self.shed_warned_at = Some(now);
            tracing::warn!(
                behind = self.stats.shed.load(Ordering::Relaxed),
                above_rate = self.stats.rate_limited.load(Ordering::Relaxed),
                "overload: new calls refused with 503 (totals since start)"
            );
        }
        let mut resp = super::message::Response::for_request(request, 503, "Service Unavailable");
        resp.set_to_tag(&message::new_tag());
        if retry_after {
            resp.set_header("Retry-After", OVERLOAD_RETRY_AFTER.to_string());
        }
        if let Ok(events) = self.layer.send_response(key, resp, Instant::now()) {
            self.dispatch(events);
        }
    }

    fn transmit(&mut self, data: Bytes, dest: SocketAddr, transport: Transport) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        if transport.is_reliable() {
            match self.connections.get(&dest) {
                Some(writer) if writer.send(data.clone()).is_ok() => {}
                _ => {
                    // No connection (or it closed): open one and queue the message on it.
                    let (writer, queue) = mpsc::unbounded_channel();
                    let _ = writer.send(data);
                    self.connections.insert(dest, writer.clone());
                    tokio::spawn(connect(dest, writer, queue, self.tcp_events.clone()));
                }
            }
            return;
        }
        // A full socket buffer drops the datagram: the transaction layer retransmits.
        if let Err(e) = self.udp.try_send_to(&data, dest) {
            tracing::debug!(%dest, "SIP UDP send failed: {e}");
        }
    }
}

async fn accept_loop(listener: TcpListener, events: mpsc::UnboundedSender<TcpEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (writer, queue) = mpsc::unbounded_channel();
                if events
                    .send(TcpEvent::Connected {
                        peer,
                        writer: writer.clone(),
                    })
                    .is_err()
                {
                    return;
                }
                tokio::spawn(serve_connection(stream, peer, queue, events.clone()));
            }
            Err(e) => {
                tracing::warn!("SIP TCP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect(
    peer: SocketAddr,
    writer: mpsc::UnboundedSender<Bytes>,
    queue: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => {
            let _ = events.send(TcpEvent::Connected { peer, writer });
            serve_connection(stream, peer, queue, events).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, "SIP TCP connect failed: {e}");
            let _ = events.send(TcpEvent::Closed { peer });
        }
        Err(_) => {
            tracing::debug!(%peer, "SIP TCP connect timed out");
            let _ = events.send(TcpEvent::Closed { peer });
        }
    }
}

/// Reads framed messages from one connection and writes what is queued for it.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = tokio::time::timeout(TCP_IDLE_TIMEOUT, reader.read(&mut chunk)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match message::frame_stream(&buf) {
                        Ok(Some((used, message))) => {
                            let _ = buf.split_to(used.min(buf.len()));
                            let message = Box::new(message);
                            if events.send(TcpEvent::Message { peer, message }).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            // Only keep-alive CRLFs so far: drop them, wait for more.
                            let skip = message::keepalive_prefix_len(&buf);
                            let _ = buf.split_to(skip.min(buf.len()));
                            break;
                        }
                        Err(error) => {
                            // A stream that cannot be framed cannot be resynchronised:
                            // answer it if we can, flush, then close.
                            let _ = events.send(TcpEvent::Malformed { peer, error });
                            drain_then_close(&mut queue, &mut writer).await;
                            let _ = events.send(TcpEvent::Closed { peer });
                            return;
                        }
                    }
                }
            }
            data = queue.recv() => match data {
                Some(data) => {
                    if writer.write_all(&data).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = events.send(TcpEvent::Closed { peer });
}

/// How long a connection that is being closed for a framing error still writes what was
/// queued for it (the 400).
const CLOSE_GRACE: Duration = Duration::from_millis(500);

async fn drain_then_close(
    queue: &mut mpsc::UnboundedReceiver<Bytes>,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
) {
    while let Ok(Some(data)) = tokio::time::timeout(CLOSE_GRACE, queue.recv()).await {
        if writer.write_all(&data).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
