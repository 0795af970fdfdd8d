use super::*;
use std::time::{Duration, Instant};

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

fn input(messages: &[ChatMessage]) -> TemplateInput<'_> {
    TemplateInput {
        messages,
        add_generation_prompt: true,
        bos_token: "<s>",
        eos_token: "</s>",
        tools: None,
    }
}

#[test]
fn built_in_templates_render_a_conversation() {
    let chat = [
        msg("system", "Be brief."),
        msg("user", "Hi"),
        msg("assistant", "Hello."),
        msg("user", "Bye"),
    ];
    let chatml = ChatTemplate::named("chatml").unwrap().render(&input(&chat)).unwrap();
    assert_eq!(
        chatml,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n\
         Hello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    let gemma = ChatTemplate::named("gemma").unwrap().render(&input(&chat)).unwrap();
    assert_eq!(
        gemma,
        "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    for (name, _) in BUILTIN {
        let text = ChatTemplate::named(name).unwrap().render(&input(&chat[1..])).unwrap();
        assert!(text.contains("Hi") && text.contains("Bye"), "{name}: {text}");
    }
    // Gemma's turns must alternate: the template says so.
    let e =
        ChatTemplate::named("gemma").unwrap().render(&input(&[msg("assistant", "x")])).unwrap_err();
    assert!(e.to_string().contains("alternate"), "{e}");
}

#[test]
fn an_unknown_name_lists_the_known_ones_and_a_string_is_a_template() {
    let e = ChatTemplate::named("vicuna-9000").unwrap_err();
    assert_eq!(e.kind(), "invalid-input");
    assert!(e.to_string().contains("chatml, gemma, llama2, llama3, mistral, phi3, zephyr"), "{e}");
    let t = ChatTemplate::named("{% for m in messages %}[{{ m.role }}]{% endfor %}").unwrap();
    assert_eq!(t.render(&input(&[msg("user", "x")])).unwrap(), "[user]");
}

#[test]
fn tools_reach_the_template() {
    let tools = r#"[{"type": "function", "function": {"name": "get_weather"}}]"#;
    let t =
        ChatTemplate::new("{% for t in tools %}{{ t.function.name }} {{ t | tojson }}{% endfor %}");
    let mut i = input(&[]);
    i.tools = Some(tools);
    assert_eq!(
        t.render(&i).unwrap(),
        r#"get_weather {"type": "function", "function": {"name": "get_weather"}}"#
    );
}

#[test]
fn hostile_templates_are_refused_in_bounded_time() {
    let cases = [
        // An endless loop (as endless as Jinja allows: nested ranges).
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
            "instructions",
        ),
        // Exponential expansion without output.
        (
            "{% set s = namespace(x='ab') %}{% for i in range(64) %}{% set s.x = s.x ~ s.x %}{% endfor %}",
            "MiB",
        ),
        // Huge output.
        ("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", ""),
        // Deep recursion.
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ""),
        // Bad syntax.
        ("{% for m in messages %}{{ m.content ", "syntax"),
    ];
    for (source, why) in cases {
        let start = Instant::now();
        let e = ChatTemplate::new(source).render(&input(&[msg("user", "x")])).unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), "invalid-input", "{source}: {e}");
        assert!(e.to_string().contains(why), "{source}: {e}");
        assert!(took < Duration::from_secs(20), "{source}: took {took:?}");
        println!("{source} -> {e} in {took:?}");
    }
    // The host is fine: a good template still renders.
    assert!(ChatTemplate::named("chatml").unwrap().render(&input(&[msg("user", "x")])).is_ok());
}
