//! flowsim
fn main() {}
