mod cli;
mod errors;
mod json;
mod security;
mod sessions;
mod shutdown;
mod sse;
mod streams;
