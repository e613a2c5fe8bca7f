use super::*;

fn model(role: &'static str, name: &str, url: &str, id: &str) -> Model {
    Model::new(role, name, "ollama", url, id, LOAD_TIMEOUT)
}

#[test]
fn a_switch_unloads_only_what_the_new_profile_does_not_use() {
    let nomic = model("embedder", "nomic", "http://o:11434", "nomic-embed-text");
    let llama = model("llm", "llama", "http://o:11434", "llama3.2");
    let qwen = model("llm", "qwen", "http://o:11434", "qwen2.5");
    let held = vec![
        Model {
            vram_bytes: Some(7),
            ..nomic.clone()
        },
        llama.clone(),
    ];
    // The same model under another configured name is still shared.
    let renamed = Model {
        name: "nomic_v1".into(),
        ..nomic.clone()
    };
    let (unload, load, keep) = plan(&held, &[renamed.clone(), qwen.clone()]);
    assert_eq!(unload, vec![llama.clone()]);
    assert_eq!(load, vec![qwen]);
    assert_eq!(keep.len(), 1);
    assert_eq!(keep[0].name, "nomic_v1");
    assert_eq!(
        keep[0].vram_bytes,
        Some(7),
        "a kept model keeps its figures"
    );
    // The same model on another Ollama server is not shared.
    let elsewhere = Model {
        url: "http://gpu2:11434".into(),
        ..nomic.clone()
    };
    let (unload, load, keep) = plan(
        std::slice::from_ref(&nomic),
        std::slice::from_ref(&elsewhere),
    );
    assert_eq!(
        (unload, load, keep.len()),
        (vec![nomic.clone()], vec![elsewhere], 0)
    );
    // Releasing unloads everything; activating from empty loads everything.
    let (unload, load, _) = plan(&held, &[]);
    assert_eq!((unload.len(), load.len()), (2, 0));
    let (unload, load, _) = plan(&[], &[nomic, llama]);
    assert_eq!((unload.len(), load.len()), (0, 2));
}

#[test]
fn placement_follows_the_protocol() {
    let mut m = model("embedder", "x", "", "m");
    assert_eq!(m.placement(), "ollama");
    m.protocol = "builtin".into();
    assert_eq!(m.placement(), "cpu");
    m.protocol = "openai".into();
    assert_eq!(m.placement(), "remote");
    assert_eq!(
        SlotState::ALL.map(SlotState::name),
        ["empty", "activating", "active", "failed"]
    );
}
