//! `TCP_NODELAY` on the connections to PostgreSQL. sqlx does not set it, and over TLS one
//! protocol message goes out as several TLS records: Nagle's algorithm then holds each
//! next record back until the server's delayed ACK (~40 ms). Measured with the benchmark
//! (300,000 records, TLS negotiated by the default `sslmode=prefer`): 12.2k records/s
//! without it, 22.6k with it, as without TLS. sqlx does not hand out its socket, so the
//! option is set, after each connect, on every TCP socket of the process whose peer is
//! the database's port (setting it twice, or on another client's socket to that port, is
//! harmless).

/// Sets `TCP_NODELAY` on this process's TCP sockets connected to `port` (Linux; elsewhere
/// nothing happens).
#[cfg(target_os = "linux")]
pub fn set_on_sockets_to(port: u16) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in fds.flatten() {
        let Some(fd) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if peer_port(fd) == Some(port) {
            let on: libc::c_int = 1;
            // SAFETY: `on` lives across the call and its size is passed with it. `fd` may
            // have been closed or reused since it was listed: then the call fails (EBADF,
            // ENOTSOCK) or sets the option on another TCP socket to the same port, both
            // harmless.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

/// Elsewhere: nothing (the option stays as the platform leaves it).
#[cfg(not(target_os = "linux"))]
pub fn set_on_sockets_to(_port: u16) {}

/// The remote port of a connected IPv4/IPv6 socket, None for anything else.
#[cfg(target_os = "linux")]
fn peer_port(fd: i32) -> Option<u16> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the pointers point to `address` and `length`, which outlive the call;
    // `length` tells the kernel how much it may write. A bad fd makes the call fail.
    let status = unsafe {
        libc::getpeername(
            fd,
            (&mut address as *mut libc::sockaddr_storage).cast(),
            &mut length,
        )
    };
    if status != 0 {
        return None;
    }
    match i32::from(address.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it can.
            let v4 = unsafe {
                &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it can.
            let v6 = unsafe {
                &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn nodelay_is_set_on_sockets_to_the_port_and_only_those() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let to_port = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!to_port.nodelay().expect("nodelay"));
        set_on_sockets_to(port);
        assert!(
            to_port.nodelay().expect("nodelay"),
            "the client side to the port"
        );
        assert!(
            !accepted.nodelay().expect("nodelay"),
            "the accepted side's peer is another port"
        );
    }
}
