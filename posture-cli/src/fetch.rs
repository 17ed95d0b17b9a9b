//! The verifier's certificate fetcher: AIA caIssuers certificates and EK certificates from
//! TPM vendors' EK certificate services, over HTTP(S) with a timeout, a size cap and an
//! in-memory cache ([`posture_core::attestation::CertificateFetcher`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use posture_core::attestation::{CertificateFetcher, FetchError, MAX_FETCHED_BYTES};

/// Fetches with a blocking call on a small current-thread runtime of its own.
#[derive(Debug)]
pub struct HttpFetcher {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    max_bytes: usize,
    /// Successful responses by URL, for the life of this fetcher.
    cache: Mutex<HashMap<String, Vec<u8>>>,
}

impl HttpFetcher {
    /// A fetcher whose every request (connect included) gives up after `timeout`.
    pub fn new(timeout: Duration) -> anyhow::Result<HttpFetcher> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("posture/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpFetcher {
            runtime,
            client,
            max_bytes: MAX_FETCHED_BYTES,
            cache: Mutex::new(HashMap::new()),
        })
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let too_big = || format!("response larger than {} bytes", self.max_bytes);
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl CertificateFetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let fail = |message: String| FetchError {
            url: url.to_owned(),
            message,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(fail("only http and https URLs are fetched".into()));
        }
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(url).cloned()) {
            return Ok(hit);
        }
        let body = self.runtime.block_on(self.get(url)).map_err(fail)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url.to_owned(), body.clone());
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A one-route HTTP/1.1 server on 127.0.0.1 that counts requests; `body: None`
    /// accepts and never answers.
    fn serve(body: Option<Vec<u8>>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                match &body {
                    Some(body) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(body);
                    }
                    None => std::thread::sleep(Duration::from_secs(5)),
                }
            }
        });
        (base, hits)
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../posture-core/tests/fixtures/ek/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn fetches_once_then_serves_from_the_cache() {
        let cert = fixture("intel-ek-intermediate-spth.pem");
        let (base, hits) = serve(Some(cert.clone()));
        let fetcher = HttpFetcher::new(Duration::from_secs(5)).unwrap();
        let url = format!("{base}/content/CRL/ekcert/SPTHEPIDPROD_EK_Platform_Public_Key.cer");
        assert_eq!(fetcher.fetch(&url).unwrap(), cert);
        assert_eq!(fetcher.fetch(&url).unwrap(), cert);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn refuses_oversized_responses() {
        let (base, _) = serve(Some(vec![b'A'; MAX_FETCHED_BYTES + 1]));
        let fetcher = HttpFetcher::new(Duration::from_secs(5)).unwrap();
        let e = fetcher
            .fetch(&format!("{base}/big"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let (base, _) = serve(None);
        let fetcher = HttpFetcher::new(Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        assert!(fetcher.fetch(&format!("{base}/slow")).is_err());
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(fetcher.fetch("file:///etc/passwd").is_err());
    }
}
