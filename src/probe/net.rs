//! Name resolution and time limits shared by both engines.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::Target;
use super::error::{ErrorKind, ProbeError, Stage};

/// The addresses `target.host` resolves to, in the resolver's order. Done
/// here rather than in the drivers so that a DNS failure is told apart from
/// a refused connection, whatever the driver.
pub(crate) async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, ProbeError> {
    let failed = |detail: String| {
        ProbeError::with_hint(
            ErrorKind::DnsFailure,
            Stage::Connect,
            format!("cannot resolve host name \"{}\": {detail}", target.host),
        )
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(failed("no address found".into()));
    }
    Ok(addrs)
}

/// Tries each address until one is not refused, so `localhost` resolving to
/// both `::1` and `127.0.0.1` works whichever the server listens on.
pub(crate) async fn connect_any<T, F, Fut>(target: &Target, mut connect: F) -> Result<T, ProbeError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<T, ProbeError>>,
{
    let mut last = None;
    for addr in resolve(target).await? {
        match connect(addr).await {
            Err(err) if err.kind == ErrorKind::ConnectionRefused => last = Some(err),
            other => return other,
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// Runs `work`, failing with `Timeout` if it takes longer than `limit`.
/// Dropping the unfinished future closes its socket.
pub(crate) async fn bounded<T>(
    limit: Duration,
    stage: Stage,
    what: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::with_hint(
            ErrorKind::Timeout,
            stage,
            format!("{} took longer than {}", what(), seconds(limit)),
        )),
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.500s");
    }
}
