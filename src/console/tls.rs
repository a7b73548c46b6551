//! Serving the console over TLS from a configured certificate (`--tls-cert`, `--tls-key`),
//! with the OpenSSL the binary already links (native-tls). Handshakes run in tasks of
//! their own, bounded in time, so a slow or silent client never holds up the others;
//! finished ones are handed to the server through a channel.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_native_tls::native_tls::{Identity, TlsAcceptor as NativeAcceptor};
use tokio_native_tls::{TlsAcceptor, TlsStream};
use tokio_util::sync::CancellationToken;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's address, as handlers see it (plain or TLS).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// The acceptor for a PEM certificate chain and its PKCS#8 PEM private key.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("cannot read --tls-key {}", key.display()))?;
    let identity = Identity::from_pkcs8(&cert_pem, &key_pem).context(
        "--tls-cert / --tls-key do not make a TLS identity (a PEM certificate chain and its \
         PKCS#8 PEM key, `-----BEGIN PRIVATE KEY-----`, are needed)",
    )?;
    let acceptor = NativeAcceptor::new(identity).context("cannot set up TLS")?;
    Ok(TlsAcceptor::from(acceptor))
}

/// TCP connections that completed a TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `stop` is cancelled, each handshake in a task of its own.
    pub fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = tcp.accept() => accepted,
                };
                match accepted {
                    Ok((stream, client)) => {
                        let (acceptor, done) = (acceptor.clone(), done.clone());
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(tls)) => {
                                    let _ = done.send((tls, client)).await;
                                }
                                Ok(Err(err)) => {
                                    tracing::debug!(%client, cause = %err, "TLS handshake failed");
                                }
                                Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!(cause = %err, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
