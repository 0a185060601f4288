//! "Does the server accept connections?", asked the way `pg_isready` asks it: send a startup
//! message and look at the first reply. An authentication request means it accepts; an error
//! (starting up, shutting down, in recovery) or no answer means it does not yet.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Protocol 3.0.
const PROTOCOL_VERSION: i32 = 196_608;

fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// True when the server at `addr` answers a startup message with an authentication request.
pub fn accepts_connections(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream
        .write_all(&startup_message("postgres", "postgres"))
        .is_err()
    {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(stream.read_exact(&mut first), Ok(()) if first[0] == b'R')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_startup_message_is_well_formed() {
        let m = startup_message("postgres", "postgres");
        let len = i32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(len, m.len());
        assert_eq!(&m[4..8], &PROTOCOL_VERSION.to_be_bytes());
        assert!(m.ends_with(b"postgres\0\0"));
    }

    fn answer_with(byte: u8) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&[byte, 0, 0, 0, 8]);
            }
        });
        addr
    }

    #[test]
    fn an_authentication_request_means_ready_and_an_error_does_not() {
        assert!(accepts_connections(
            answer_with(b'R'),
            Duration::from_secs(5)
        ));
        assert!(!accepts_connections(
            answer_with(b'E'),
            Duration::from_secs(5)
        ));
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        assert!(!accepts_connections(port, Duration::from_millis(500)));
    }
}
