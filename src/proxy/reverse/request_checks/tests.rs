use super::*;

#[test]
fn header_checks() {
    let mut h = http::HeaderMap::new();
    h.insert("mcp-protocol-version", "2025-11-25".parse().unwrap());
    assert!(check_headers(&h, 100, 32 << 10).is_ok());
    h.insert("mcp-protocol-version", "2031-01-01".parse().unwrap());
    assert!(
        check_headers(&h, 100, 32 << 10).is_ok(),
        "unknown dates go upstream"
    );
    h.insert("mcp-protocol-version", "latest".parse().unwrap());
    assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 400);
    h.remove("mcp-protocol-version");
    h.append("mcp-session-id", "a".parse().unwrap());
    h.append("mcp-session-id", "a".parse().unwrap());
    assert!(
        check_headers(&h, 100, 32 << 10).is_ok(),
        "a repeated identical id is harmless"
    );
    h.append("mcp-session-id", "b".parse().unwrap());
    assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 400);
    h.remove("mcp-session-id");
    h.insert("x-big", "x".repeat(40_000).parse().unwrap());
    assert_eq!(check_headers(&h, 100, 32 << 10).unwrap_err().status, 431);
    let mut many = http::HeaderMap::new();
    for i in 0..101 {
        many.insert(
            http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
            "1".parse().unwrap(),
        );
    }
    assert_eq!(check_headers(&many, 100, 32 << 10).unwrap_err().status, 431);
}

/// Regression table for rebinding checks that failed open on inputs no browser sends
/// (a missing, doubled or non-ASCII `Host`, a doubled `Origin`, a port wildcard matching
/// `1.evil.com`, an absolute-form target naming another host).
#[test]
fn rebinding_checks_fail_closed_on_inputs_no_browser_sends() {
    use http::Version as V;
    type Case = (
        &'static str,
        V,
        &'static str,
        &'static [(&'static str, &'static [u8])],
        u16,
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("loopback host and origin", V::HTTP_11, "/mcp", &[("host", b"127.0.0.1:8080"), ("origin", b"http://localhost:6274")], 200),
        ("IPv6 loopback", V::HTTP_11, "/mcp", &[("host", b"[::1]:8080")], 200),
        ("HTTP/1.0 without Host", V::HTTP_10, "/mcp", &[], 200),
        ("HTTP/1.1 without Host", V::HTTP_11, "/mcp", &[], 400),
        ("HTTP/2 without :authority or Host", V::HTTP_2, "/mcp", &[], 400),
        ("HTTP/2 :authority", V::HTTP_2, "http://localhost:8080/mcp", &[], 200),
        ("HTTP/2 foreign :authority", V::HTTP_2, "http://evil.example:8080/mcp", &[], 403),
        ("HTTP/2 :authority and Host disagree", V::HTTP_2, "http://localhost:8080/mcp", &[("host", b"evil.example")], 400),
        ("two Host headers", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("host", b"localhost")], 400),
        ("two Origin headers", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("origin", b"http://localhost"), ("origin", b"http://evil.example")], 400),
        ("non-UTF-8 Host", V::HTTP_11, "/mcp", &[("host", b"localhost\xff")], 400),
        ("Host with a space", V::HTTP_11, "/mcp", &[("host", b"local host")], 400),
        ("empty Host", V::HTTP_11, "/mcp", &[("host", b"")], 400),
        ("non-UTF-8 Origin", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("origin", b"http://\xfflocalhost")], 400),
        ("foreign Host", V::HTTP_11, "/mcp", &[("host", b"evil.example.com")], 403),
        ("foreign Origin", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("origin", b"http://evil.example")], 403),
        ("port wildcard and a dotted port", V::HTTP_11, "/mcp", &[("host", b"localhost:1.evil.com")], 403),
        ("port wildcard and letters", V::HTTP_11, "/mcp", &[("host", b"localhost:x.evil.com")], 403),
        ("origin port wildcard and a dotted port", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("origin", b"http://localhost:1.evil.com")], 403),
        ("origin port wildcard and userinfo", V::HTTP_11, "/mcp", &[("host", b"localhost"), ("origin", b"http://localhost:80@evil.com")], 403),
        ("absolute form agreeing with Host", V::HTTP_11, "http://localhost:8080/mcp", &[("host", b"LOCALHOST:8080")], 200),
        ("absolute form disagreeing with Host", V::HTTP_11, "http://localhost:8080/mcp", &[("host", b"localhost:9090")], 400),
        ("absolute form without Host", V::HTTP_11, "http://localhost:8080/mcp", &[], 400),
        ("absolute form naming a foreign host", V::HTTP_11, "http://evil.example/mcp", &[("host", b"evil.example")], 403),
        ("absolute form with userinfo", V::HTTP_11, "http://localhost:80@evil.com/mcp", &[("host", b"localhost:80@evil.com")], 403),
    ];
    let s = Security::loopback();
    let status = |r: Result<(), Rejection>| match r {
        Ok(()) => 200,
        Err(r) if r.status == 400 => {
            assert_eq!(r.code, ErrorCode::InvalidRequest);
            400
        }
        Err(r) => {
            assert_eq!(r.code, ErrorCode::Forbidden);
            r.status
        }
    };
    for (name, version, target, headers, want) in cases {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers.iter() {
            let name = http::HeaderName::from_static(k);
            map.append(name, http::HeaderValue::from_bytes(v).unwrap());
        }
        let uri: http::Uri = target.parse().unwrap();
        let raw = target.as_bytes();
        let got = status(check_origin_and_host(*version, &uri, raw, &map, &s));
        assert_eq!(got, *want, "{name}");
        // Pingora 0.9.1 keeps an absolute-form authority off the `Uri`: the raw target says it.
        let origin_form: http::Uri = uri.path().parse().unwrap();
        let split = status(check_origin_and_host(*version, &origin_form, raw, &map, &s));
        assert_eq!(split, *want, "{name}, authority in the raw target only");
    }
}

#[test]
fn two_authorization_headers_are_400() {
    let mut h = http::HeaderMap::new();
    h.append("authorization", "Bearer a".parse().unwrap());
    assert!(check_headers(&h, 100, 32 << 10).is_ok());
    h.append("authorization", "Bearer a".parse().unwrap());
    let r = check_headers(&h, 100, 32 << 10).unwrap_err();
    assert_eq!((r.status, r.code), (400, ErrorCode::InvalidRequest));
    assert!(r.message.contains("Authorization"));
}

#[test]
fn routes_the_endpoint_and_rejects_the_rest() {
    assert_eq!(route(&Method::POST, "/mcp", "/mcp"), Route::Post);
    assert_eq!(route(&Method::GET, "/mcp", "/mcp"), Route::Get);
    assert_eq!(route(&Method::DELETE, "/mcp", "/mcp"), Route::Delete);
    assert_eq!(route(&Method::OPTIONS, "/mcp", "/mcp"), Route::Options);
    let Route::Reject(r) = route(&Method::PUT, "/mcp", "/mcp") else {
        panic!()
    };
    assert_eq!((r.status, r.allow), (405, Some(ALLOW)));
    let Route::Reject(r) = route(&Method::POST, "/other", "/mcp") else {
        panic!()
    };
    assert_eq!(r.status, 404);
    let Route::Reject(r) = route(&Method::POST, "/mcp/", "/mcp") else {
        panic!()
    };
    assert_eq!(r.status, 404);
}
