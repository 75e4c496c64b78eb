//! TLS at the edge and to origins, over real sockets with certificates issued per
//! test by a private CA: SNI picks among certificates, ALPN picks HTTP/2, a bad
//! pair is a positioned error, a reload swaps certificates for new connections
//! only, an origin is verified against its CA.

use std::path::Path;
use std::time::Duration;

use edge_config::{Config, Source};
use http::StatusCode;
use outpost::BuildOptions;
use outpost_tests::tls::{self, Ca, Leaf};
use outpost_tests::{TestNode, TestOrigin};

fn parse(toml: &str) -> Config {
    Config::from_source(Source {
        name: "test.toml".into(),
        base_dir: ".".into(),
        text: toml.into(),
    })
    .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"))
}

/// A node config: one TLS listener with `certs` (cert, key paths) in order.
fn tls_config(origin: std::net::SocketAddr, certs: &[(&Path, &Path)]) -> String {
    let mut s = String::from("[[listeners]]\naddress = \"127.0.0.1:0\"\n");
    for (cert, key) in certs {
        s.push_str(&format!(
            "[[listeners.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    s.push_str(&format!(
        "\n[origins.main]\naddress = \"{origin}\"\n\n[[routes]]\nname = \"all\"\norigin = \"main\"\n"
    ));
    s
}

/// Which of `leaves` the node presented to a client asking for `sni`.
async fn presented(
    node: &TestNode,
    ca: &Ca,
    sni: &str,
    leaves: &[(&str, &Leaf)],
) -> Result<String, String> {
    let stream = tls::connect(node.addr, sni, ca.client(&[b"http/1.1"]))
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls::peer_leaf(&stream).ok_or("no certificate")?;
    Ok(leaves
        .iter()
        .find(|(_, l)| l.der == leaf)
        .map_or("unknown", |(n, _)| n)
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_among_three_certificates_and_alpn_picks_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Outpost test CA");
    let default = ca.leaf(&["c.example", "127.0.0.1"]);
    let a = ca.leaf(&["a.example"]);
    let wild = ca.leaf(&["*.b.example"]);
    let files = [
        default.write(dir.path(), "default"),
        a.write(dir.path(), "a"),
        wild.write(dir.path(), "wild"),
    ];
    let origin = TestOrigin::start().await;
    let certs: Vec<_> = files
        .iter()
        .map(|(c, k)| (c.as_path(), k.as_path()))
        .collect();
    let node = TestNode::new(&tls_config(origin.addr, &certs)).await;
    let leaves = [("default", &default), ("a", &a), ("wild", &wild)];
    for (sni, want) in [
        ("a.example", "a"),
        ("A.EXAMPLE", "a"),
        ("x.b.example", "wild"),
        ("c.example", "default"),
        // An IP address: the client sends no name, and gets the first certificate.
        ("127.0.0.1", "default"),
    ] {
        assert_eq!(
            presented(&node, &ca, sni, &leaves).await.as_deref(),
            Ok(want),
            "{sni}"
        );
    }
    // A wildcard covers one label only: two levels down gets the default, which
    // the client rightly refuses.
    let deep = presented(&node, &ca, "y.x.b.example", &leaves).await;
    assert!(
        deep.as_ref().is_err_and(|e| e.contains("certificate")),
        "{deep:?}"
    );

    // ALPN: h2 when offered, HTTP/1.1 otherwise; TLS 1.3 either way.
    for (alpn, version) in [
        (&[&b"h2"[..], b"http/1.1"][..], http::Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], http::Version::HTTP_11),
    ] {
        let stream = tls::connect(node.addr, "a.example", ca.client(alpn))
            .await
            .expect("handshake");
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let r = tls::get(stream, "a.example", "/echo")
            .await
            .expect("request");
        assert_eq!(r.version, version);
        assert_eq!(r.status, StatusCode::OK);
        let echo: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(echo["headers"]["x-forwarded-proto"], "https", "{echo}");
    }

    // Session resumption: a client that kept the session's ticket resumes.
    let client = ca.client(&[b"http/1.1"]);
    let first = tls::connect(node.addr, "a.example", client.clone())
        .await
        .expect("handshake");
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    tls::get(first, "a.example", "/echo")
        .await
        .expect("request");
    let again = tls::connect(node.addr, "a.example", client)
        .await
        .expect("handshake");
    assert_eq!(
        again.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_or_a_missing_file_is_a_positioned_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Outpost test CA");
    let (cert, _) = ca.leaf(&["a.example"]).write(dir.path(), "a");
    let (_, other_key) = ca.leaf(&["b.example"]).write(dir.path(), "b");
    let missing = dir.path().join("missing.pem");
    for (cert, key, line, what) in [
        (&cert, &other_key, 5, "is not the private key of"),
        (&missing, &other_key, 4, "cannot read"),
        (&cert, &cert, 5, "expected a PEM private key"),
    ] {
        let toml = tls_config("127.0.0.1:9".parse().expect("addr"), &[(cert, key)]);
        let err = outpost::start(parse(&toml), &BuildOptions::default(), None, Some(None))
            .await
            .err()
            .map(|e| e.to_string())
            .expect("the node refuses to start");
        assert!(
            err.contains(&format!("test.toml:{line}:")) && err.contains(what),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_certificates_for_new_connections_while_a_long_request_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Outpost test CA");
    let first = ca.leaf(&["a.example"]);
    let (cert, key) = first.write(dir.path(), "a");
    let origin = TestOrigin::start().await;
    let toml = tls_config(origin.addr, &[(&cert, &key)]);
    let node = TestNode::new(&toml).await;
    let leaves = |second: &Leaf| {
        [("first", first.der.clone()), ("second", second.der.clone())]
            .into_iter()
            .collect::<Vec<_>>()
    };
    // A request the origin takes 3 s to answer, on a connection made before.
    let stream = tls::connect(node.addr, "a.example", ca.client(&[b"http/1.1"]))
        .await
        .expect("handshake");
    let long = tokio::spawn(tls::get(stream, "a.example", "/slow"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = ca.leaf(&["a.example"]);
    second.write(dir.path(), "a");
    node.running.reload(parse(&toml)).await.expect("reload");
    let now = tls::connect(node.addr, "a.example", ca.client(&[b"http/1.1"]))
        .await
        .expect("handshake");
    let got = tls::peer_leaf(&now).expect("certificate");
    let names = leaves(&second);
    assert_eq!(
        names.iter().find(|(_, d)| *d == got).map(|(n, _)| *n),
        Some("second"),
        "new connections get the reloaded certificate"
    );

    // A broken key refuses the reload; the second certificate keeps serving.
    std::fs::write(&key, "not a key").expect("write");
    assert!(node.running.reload(parse(&toml)).await.is_err());
    let after = tls::connect(node.addr, "a.example", ca.client(&[b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(tls::peer_leaf(&after), Some(second.der.clone()));

    let r = long
        .await
        .expect("task")
        .expect("the long request completes");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"slow\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_is_verified_against_its_ca_and_spoken_to_in_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Origin CA");
    let stranger = Ca::new("Some other CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.path().join("other.pem"), stranger.pem()).expect("write");
    let (origin, _task) = tls::origin(&ca.leaf(&["origin.test"])).await;
    let node_with = |ca_file: &str, extra: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{origin}\"\n\
             [origins.main.tls]\nca = \"{}\"\nserver_name = \"origin.test\"\n{extra}\n\n\
             [[routes]]\nname = \"all\"\norigin = \"main\"\n",
            dir.path().join(ca_file).display()
        )
    };
    let node = TestNode::new(&node_with("ca.pem", "")).await;
    let r = node.get("/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "HTTP/2.0", "h2 by ALPN");

    let node = TestNode::new(&node_with("ca.pem", "http2 = false")).await;
    let r = node.get("/").await;
    assert_eq!(r.text(), "HTTP/1.1");

    // Signed by a CA the node was not told to trust: 502, never the origin's answer.
    let node = TestNode::new(&node_with("other.pem", "")).await;
    let r = node.get("/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(!r.text().contains("HTTP/"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_requires_a_client_certificate_gets_the_configured_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Origin CA");
    let clients = Ca::new("Edge clients CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    let (cert, key) = clients.leaf(&["edge.example"]).write(dir.path(), "edge");
    let (origin, _task) = tls::origin_requiring(&ca.leaf(&["origin.test"]), Some(&clients)).await;
    let node_with = |client: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[origins.main]\naddress = \"{origin}\"\n\
             [origins.main.tls]\nca = \"{}\"\nserver_name = \"origin.test\"\n{client}\n\n\
             [[routes]]\nname = \"all\"\norigin = \"main\"\n",
            dir.path().join("ca.pem").display()
        )
    };
    let with = format!(
        "client_certificate = {{ cert = \"{}\", key = \"{}\" }}",
        cert.display(),
        key.display()
    );
    let node = TestNode::new(&node_with(&with)).await;
    let r = node.get("/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let node = TestNode::new(&node_with("")).await;
    assert_eq!(node.get("/").await.status, StatusCode::BAD_GATEWAY);
}
