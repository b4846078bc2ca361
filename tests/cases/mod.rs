mod cli;
mod errors;
mod json;
mod sessions;
mod shutdown;
mod sse;
mod streams;
