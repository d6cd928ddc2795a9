//! Local port forwarding over EC2 Instance Connect Endpoint tunnels: one tunnel (a
//! freshly presigned websocket) per accepted connection, as the AWS CLI's
//! `open-tunnel --local-port` does. The endpoint caps how many are open at once.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::aws::AwsContext;
use crate::eice::{tunnel, EiceError, Opener};

/// Bytes read from a local connection at once (one websocket message each).
const CHUNK: usize = tunnel::MAX_MESSAGE;

/// Accepts connections on `listener` for ever, each carried by its own tunnel; a
/// tunnel that cannot be opened closes its connection and is reported on stderr.
pub async fn serve(
    ctx: AwsContext,
    opener: Opener,
    listener: TcpListener,
    limit: std::time::Duration,
) {
    let ctx = Arc::new(ctx);
    let opener = Arc::new(opener);
    let mut n = 0u64;
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        n += 1;
        let (ctx, opener) = (ctx.clone(), opener.clone());
        tokio::spawn(async move {
            tracing::debug!(connection = n, %peer, "accepted; opening a tunnel");
            if let Err(e) = carry(&ctx, &opener, tcp, limit).await {
                let fix = e.fix("the instance", &opener.request.endpoint_id);
                eprintln!("ec2ssh: connection {n}: {e}\n  fix: {fix}");
            }
        });
    }
}

async fn carry(
    ctx: &AwsContext,
    opener: &Opener,
    tcp: TcpStream,
    limit: std::time::Duration,
) -> Result<(), EiceError> {
    let creds = ctx
        .credentials()
        .await
        .map_err(|e| EiceError::Sign(e.summary()))?;
    let ws = opener.open(&creds).await?;
    let _ = tcp.set_nodelay(true);
    let (mut read, write) = tcp.into_split();
    let (tx, rx) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let result = tunnel::pipe(ws, rx, write, limit).await;
    reader.abort();
    result.map(|_| ())
}
