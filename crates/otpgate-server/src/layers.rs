//! Which of the public router's middleware layers a build applies. Every real server applies
//! all of them (`Layers::default()`); the benchmark's `layers` example
//! (`crates/otpgate-bench/examples/layers.rs`) removes some, once, when the router is built, to
//! measure what each one costs (BENCHMARKS.md, the per-layer table). The choice is made at start
//! and compiled into the router: a request never asks which layers are on.

/// One switch per layer; `true` applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// Request ids, the client address and the request span (`request_id::middleware`).
    pub request_id: bool,
    /// The request counter and duration histogram (inside the request-id layer).
    pub metrics: bool,
    /// The `request done` access-log event (inside the request-id layer).
    pub access_log: bool,
    /// HSTS and refusing plain HTTP (`transport::middleware`).
    pub transport: bool,
    pub cors: bool,
    pub security_headers: bool,
    /// The whole-request deadline.
    pub deadline: bool,
    pub catch_panic: bool,
    pub body_limit: bool,
}

impl Default for Layers {
    fn default() -> Layers {
        Layers::ALL
    }
}

impl Layers {
    pub const ALL: Layers = Layers {
        request_id: true,
        metrics: true,
        access_log: true,
        transport: true,
        cors: true,
        security_headers: true,
        deadline: true,
        catch_panic: true,
        body_limit: true,
    };

    /// The names a benchmark can remove, in the order they wrap a request (outermost first).
    pub const NAMES: [&str; 9] = [
        "request_id",
        "metrics",
        "access_log",
        "transport",
        "cors",
        "security_headers",
        "deadline",
        "catch_panic",
        "body_limit",
    ];

    /// Every layer but the comma-separated `names` (`all` removes every one; empty removes none).
    pub fn without(names: &str) -> Result<Layers, String> {
        let mut layers = Layers::ALL;
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                for n in Layers::NAMES {
                    *layers.switch(n).expect("a known name") = false;
                }
                continue;
            }
            *layers.switch(name).ok_or_else(|| format!("unknown layer {name:?}; known: {:?}", Layers::NAMES))? = false;
        }
        Ok(layers)
    }

    fn switch(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "request_id" => &mut self.request_id,
            "metrics" => &mut self.metrics,
            "access_log" => &mut self.access_log,
            "transport" => &mut self.transport,
            "cors" => &mut self.cors,
            "security_headers" => &mut self.security_headers,
            "deadline" => &mut self.deadline,
            "catch_panic" => &mut self.catch_panic,
            "body_limit" => &mut self.body_limit,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Layers;

    #[test]
    fn names_switch_off_their_layer_only() {
        assert_eq!(Layers::without("").unwrap(), Layers::ALL);
        let l = Layers::without("cors, metrics").unwrap();
        assert!(!l.cors && !l.metrics);
        assert_eq!(Layers { cors: true, metrics: true, ..l }, Layers::ALL);
        assert!(Layers::without("all").unwrap().eq(&Layers {
            request_id: false,
            metrics: false,
            access_log: false,
            transport: false,
            cors: false,
            security_headers: false,
            deadline: false,
            catch_panic: false,
            body_limit: false,
        }));
        assert!(Layers::without("gzip").unwrap_err().contains("gzip"));
    }
}
