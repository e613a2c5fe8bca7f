use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A stand-in for the external service: answers each request with `answer(n, body)`
/// (status, JSON), where n counts requests from 0. Returns its base URL.
async fn service(
    answer: impl Fn(usize, Value) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let answer = Arc::clone(&answer);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 65536];
                let body = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buffer.len() >= end + 4 + length {
                            break serde_json::from_slice(&buffer[end + 4..end + 4 + length])
                                .unwrap_or(Value::Null);
                        }
                    }
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, json) = answer(n, body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    (url, count)
}

fn fast(url: &str) -> HttpOptions {
    HttpOptions {
        backoff: Duration::from_millis(10),
        batch_size: 3,
        ..HttpOptions::new(url, "nomic-embed-text")
    }
}

#[tokio::test]
async fn a_pinned_ollama_model_is_asked_to_stay_loaded() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let (url, _) = service(move |_, body: Value| {
        record.lock().unwrap().push(body["keep_alive"].clone());
        let n = body["input"].as_array().unwrap().len();
        (
            200,
            json!({"embeddings": vec![vec![1.0, 0.0]; n]}).to_string(),
        )
    })
    .await;
    let pinned = Arc::new(AtomicBool::new(false));
    let embedder = HttpEmbedder::connect(Protocol::Ollama, fast(&url), Arc::clone(&pinned))
        .await
        .unwrap();
    embedder.embed(&["a".to_string()]).await.unwrap();
    pinned.store(true, Ordering::SeqCst);
    embedder.embed(&["b".to_string()]).await.unwrap();
    pinned.store(false, Ordering::SeqCst);
    embedder.embed(&["c".to_string()]).await.unwrap();
    // The probe and the first and last requests leave Ollama's default; the pinned
    // one asks it to keep the model loaded.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Value::Null, Value::Null, json!(-1), Value::Null]
    );
}

#[tokio::test]
async fn ollama_batches_and_keeps_order() {
    let (url, count) = service(|_, body| {
        let input = body["input"].as_array().unwrap();
        let vectors: Vec<Vec<f32>> = input
            .iter()
            .map(|t| vec![t.as_str().unwrap().len() as f32, 1.0])
            .collect();
        (
            200,
            json!({"model": "m", "embeddings": vectors}).to_string(),
        )
    })
    .await;
    let embedder = HttpEmbedder::connect(Protocol::Ollama, fast(&url), Default::default())
        .await
        .unwrap();
    assert_eq!(
        (embedder.dimension(), embedder.model()),
        (2, "ollama:nomic-embed-text")
    );
    let texts: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee"]
        .map(String::from)
        .to_vec();
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(
        vectors.iter().map(|v| v[0]).collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0]
    );
    // 1 probe + 2 batches of at most 3.
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn openai_base64_out_of_order_and_retries() {
    let (url, count) = service(|n, body| {
        if n == 1 {
            return (503, json!({"error": {"message": "overloaded"}}).to_string());
        }
        assert_eq!(body["encoding_format"], "base64");
        let data: Vec<Value> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .rev()
            .map(|(i, _)| {
                let bytes: Vec<u8> = [i as f32, 0.5].iter().flat_map(|f| f.to_le_bytes()).collect();
                json!({"index": i, "embedding": base64::engine::general_purpose::STANDARD.encode(bytes)})
            })
            .collect();
        (200, json!({"data": data}).to_string())
    })
    .await;
    let options = HttpOptions {
        base64: true,
        api_key: Some("sk-secret".into()),
        ..fast(&url)
    };
    let embedder = HttpEmbedder::connect(Protocol::OpenAi, options, Default::default())
        .await
        .unwrap();
    let vectors = embedder
        .embed(&["x".into(), "y".into(), "z".into()])
        .await
        .unwrap();
    assert_eq!(
        vectors,
        vec![vec![0.0, 0.5], vec![1.0, 0.5], vec![2.0, 0.5]]
    );
    assert_eq!(count.load(Ordering::SeqCst), 3); // probe, a 503, its retry
}

#[tokio::test]
async fn clear_errors_when_down_or_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = HttpEmbedder::connect(Protocol::Ollama, fast(&url), Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("cannot reach") && error.contains("ollama serve"),
        "{error}"
    );
    let (url, count) =
        service(|_, _| (401, json!({"error": {"message": "bad key"}}).to_string())).await;
    let options = HttpOptions {
        api_key: Some("sk-secret".into()),
        ..fast(&url)
    };
    let error = HttpEmbedder::connect(Protocol::OpenAi, options, Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("refused the credentials") && error.contains("bad key"),
        "{error}"
    );
    assert!(!error.contains("sk-secret"));
    assert_eq!(count.load(Ordering::SeqCst), 1, "401 is not retried");
}
