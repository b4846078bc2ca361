mod cli;
mod errors;
mod json;
mod shutdown;
mod sse;
mod streams;
