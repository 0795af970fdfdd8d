//! TabAgent's action router as a component: the JSON actions of the TabAgent browser extension
//! (`LOAD_MODEL`, `CHAT`, `GENERATE`, `DOWNLOAD_MODEL`, …; `docs/protocol.md`) on the
//! `tabagent:llm` interfaces. It exports `tabagent:llm/messages`, so
//! `tabagent-host native-messaging router.wasm` serves the browser with it; the host only moves
//! framed bytes. Bad input of any kind gets an error answer; the router never dies of it.

mod actions;
mod jobs;
mod protocol;

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package tabagent:router-guest;
            world router-guest {
                include tabagent:llm/llm@0.2.0;
                export tabagent:llm/messages@0.2.0;
            }
        ",
        path: "../../wit",
        world: "tabagent:router-guest/router-guest",
        with: {
            "tabagent:llm/types@0.2.0": tabagent_guest::bindings::tabagent::llm::types,
            "tabagent:llm/hardware@0.2.0": tabagent_guest::bindings::tabagent::llm::hardware,
            "tabagent:llm/models@0.2.0": tabagent_guest::bindings::tabagent::llm::models,
            "tabagent:llm/inference@0.2.0": tabagent_guest::bindings::tabagent::llm::inference,
            "tabagent:llm/pulls@0.2.0": tabagent_guest::bindings::tabagent::llm::pulls,
        },
    });
}

use bindings::exports::tabagent::llm::messages::{Guest, Reply};
use std::cell::RefCell;

thread_local! {
    static ROUTER: RefCell<actions::Router> = RefCell::new(actions::Router::default());
}

struct Component;

impl Guest for Component {
    fn handle(message: String) -> Reply {
        ROUTER.with_borrow_mut(|r| {
            let messages = r.handle(&message);
            Reply { messages, busy: r.busy() }
        })
    }

    fn poll() -> Reply {
        ROUTER.with_borrow_mut(|r| {
            let messages = r.poll();
            Reply { messages, busy: r.busy() }
        })
    }
}

bindings::export!(Component with_types_in bindings);
