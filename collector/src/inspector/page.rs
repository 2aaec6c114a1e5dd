//! The inspector's single HTML page (vanilla JS on EventSource), compiled into the binary.

pub const HTML: &str = include_str!("page.html");
