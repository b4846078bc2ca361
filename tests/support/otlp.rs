//! A real OTLP receiver on loopback, built on the official protobuf definitions
//! (`opentelemetry-proto`): OTLP/gRPC through the generated tonic service, or OTLP/HTTP with
//! protobuf bodies, both served by hyper. It keeps every span it receives, and can stop
//! (listener and connections closed) to play a collector that dies mid-run.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// One received span with the resource's `service.name`.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// A string or integer attribute as text.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(value_text)
    }

    pub fn has_event(&self, name: &str) -> bool {
        self.span.events.iter().any(|e| e.name == name)
    }

    /// An attribute of the first event called `name`.
    pub fn event_attr(&self, name: &str, key: &str) -> Option<String> {
        let event = self.span.events.iter().find(|e| e.name == name)?;
        event
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(value_text)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Store = Arc<Mutex<Vec<Received>>>;

fn keep(store: &Store, request: ExportTraceServiceRequest) {
    let mut spans = store.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(value_text)
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                spans.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
}

struct Collector(Store);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Which OTLP transport the receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

/// A running receiver.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    spans: Store,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl OtlpReceiver {
    pub async fn start(protocol: Protocol) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Store = Arc::default();
        let tasks = Arc::new(Mutex::new(Some(JoinSet::new())));
        let (store, conns) = (spans.clone(), tasks.clone());
        let accept = async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let io = TokioIo::new(stream);
                let store = store.clone();
                let serve = async move {
                    match protocol {
                        Protocol::Grpc => {
                            let svc = TraceServiceServer::new(Collector(store));
                            let svc = hyper_util::service::TowerToHyperService::new(svc);
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, svc)
                                .await;
                        }
                        Protocol::Http => {
                            let svc = hyper::service::service_fn(move |req| {
                                let store = store.clone();
                                async move { http_export(&store, req).await }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, svc)
                                .await;
                        }
                    }
                };
                match conns.lock().unwrap().as_mut() {
                    Some(set) => {
                        set.spawn(serve);
                    }
                    None => return,
                }
            }
        };
        tasks.lock().unwrap().as_mut().unwrap().spawn(accept);
        Self {
            addr,
            protocol,
            spans,
            tasks,
        }
    }

    /// The endpoint for `telemetry.otlp.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and closes every connection: a collector gone.
    pub fn stop(&self) {
        if let Some(mut set) = self.tasks.lock().unwrap().take() {
            set.abort_all();
        }
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans once `done` holds for them (polled for up to 10 s: the proxy exports every
    /// second); panics with what arrived otherwise.
    pub async fn wait_for(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let names: Vec<String> = self.spans().iter().map(|s| s.span.name.clone()).collect();
        panic!("spans never arrived as expected; got {names:?}");
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn http_export(
    store: &Store,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let path_ok = req.uri().path() == "/v1/traces";
    let protobuf = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    let body = req.into_body().collect().await?.to_bytes();
    let status = match (path_ok, protobuf) {
        (true, true) => match ExportTraceServiceRequest::decode(body) {
            Ok(request) => {
                keep(store, request);
                200
            }
            Err(_) => 400,
        },
        (false, _) => 404,
        (true, false) => 415,
    };
    let body = ExportTraceServiceResponse::default().encode_to_vec();
    Ok(hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}
