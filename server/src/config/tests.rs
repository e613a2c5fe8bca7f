use super::*;

#[test]
fn parses_sizes() {
    assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
    assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
    assert_eq!(parse_bytes("1000"), Ok(1000));
    assert_eq!(parse_bytes("1.5GB"), Ok(1_500_000_000));
    assert!(parse_bytes("lots").is_err());
    assert!(parse_bytes("3 parsecs").is_err());
}

#[test]
fn flags_override_file_and_defaults_fill_the_rest() {
    let dir = std::env::temp_dir().join(format!("lh-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lakehouse.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9999\"\nmemory_limit = \"1GiB\"\nbatch_size = 100\n",
    )
    .unwrap();
    let args = ServeArgs {
        config: Some(path),
        batch_size: Some(4096),
        ..Default::default()
    };
    let settings = Settings::resolve(args).unwrap();
    assert_eq!(settings.listen.port(), 9999);
    assert_eq!(settings.memory_limit, 1 << 30);
    assert_eq!(settings.batch_size, 4096);
    assert_eq!(settings.data_dir, PathBuf::from("lakehouse-data"));
}

#[test]
fn tls_and_limits_from_the_file_with_checks() {
    let dir = std::env::temp_dir().join(format!("lh-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lakehouse.toml");
    std::fs::write(
        &path,
        "tls_cert = \"/etc/lh/server.pem\"\ntls_key = \"/etc/lh/server.key\"\n\
         max_message_size = \"64MiB\"\nmax_concurrent_queries = 8\nquery_timeout_secs = 30\n",
    )
    .unwrap();
    let settings = Settings::resolve(ServeArgs {
        config: Some(path.clone()),
        ..Default::default()
    })
    .unwrap();
    let tls = settings.tls.unwrap();
    assert_eq!(tls.cert, PathBuf::from("/etc/lh/server.pem"));
    assert!(tls.client_ca.is_none());
    assert_eq!(settings.max_message_size, 64 << 20);
    assert_eq!(settings.max_concurrent_queries, 8);
    assert_eq!(settings.query_timeout, Some(Duration::from_secs(30)));

    // Defaults: no TLS, 256 MiB messages, 64 slots, no timeout.
    let defaults = Settings::resolve(ServeArgs::default()).unwrap();
    assert!(defaults.tls.is_none());
    assert_eq!(defaults.max_message_size, 256 << 20);
    assert_eq!(defaults.max_concurrent_queries, 64);
    assert_eq!(defaults.query_timeout, None);

    // A certificate without its key, a zero limit, a tiny message size: refused.
    for args in [
        ServeArgs {
            tls_cert: Some("/etc/lh/server.pem".into()),
            ..Default::default()
        },
        ServeArgs {
            max_concurrent_queries: Some(0),
            ..Default::default()
        },
        ServeArgs {
            max_message_size: Some("1KiB".into()),
            ..Default::default()
        },
    ] {
        assert!(Settings::resolve(args).is_err());
    }
}

#[test]
fn embedders_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("lh-config-emb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lakehouse.toml");
    let resolve = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Settings::resolve(ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
    };
    let settings = resolve(
        "[embedders.nomic]\nprotocol = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\n\
         model = \"nomic-embed-text\"\nbatch_size = 16\n",
    )
    .unwrap();
    let llm = resolve(
        "[llms.llama]\nprotocol = \"ollama\"\nurl = \"http://127.0.0.1:11434\"\n\
         model = \"llama3.2\"\ntimeout_secs = 600\n",
    )
    .unwrap();
    let llama = &llm.llms["llama"];
    assert_eq!(
        (llama.model.as_str(), llama.timeout_secs),
        ("llama3.2", Some(600))
    );
    let nomic = &settings.embedders["nomic"];
    assert_eq!(
        (nomic.protocol.as_str(), nomic.batch_size),
        ("ollama", Some(16))
    );
    for (text, expected) in [
        (
            "[embedders.x]\nprotocol = \"grpc\"\nurl = \"http://h\"\nmodel = \"m\"\n",
            "not ollama or openai",
        ),
        (
            "[embedders.x]\nprotocol = \"openai\"\nurl = \"ftp://h\"\nmodel = \"m\"\n",
            "not http or https",
        ),
        (
            "[embedders.builtin]\nprotocol = \"openai\"\nurl = \"http://h\"\nmodel = \"m\"\n",
            "not \"builtin\"",
        ),
        (
            "[embedders.x]\nprotocol = \"openai\"\nurl = \"http://h\"\nmodel = \"m\"\n\
             api_key_env = \"A\"\napi_key_file = \"/k\"\n",
            "not both",
        ),
        (
            "[llms.x]\nprotocol = \"vllm\"\nurl = \"http://h\"\nmodel = \"m\"\n",
            "llm \"x\": protocol \"vllm\" is not ollama or openai",
        ),
        (
            "[llms.x]\nprotocol = \"ollama\"\nurl = \"http://h\"\nmodel = \" \"\n",
            "model is empty",
        ),
        (
            "[llms.x]\nprotocol = \"ollama\"\nurl = \"http://h\"\nmodel = \"m\"\nkeep = 1\n",
            "unknown field",
        ),
    ] {
        let err = resolve(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn unknown_file_keys_are_errors() {
    let dir = std::env::temp_dir().join(format!("lh-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lakehouse.toml");
    std::fs::write(&path, "lisen = \"x\"\n").unwrap();
    let err = Settings::resolve(ServeArgs {
        config: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
}
