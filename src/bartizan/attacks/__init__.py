"""Known-attack similarity index: signed entries of known injection and jailbreak prompts.

- `bartizan.attacks.signing`: Ed25519 keys, canonical JSON, `Keyring` of pinned public keys.
- `bartizan.attacks.index`: entry records, the split rule, exact cosine search, chunking, calibration.
- `bartizan.attacks.seed`: the packaged, project-signed seed and the cached loader used by the detector.
- `bartizan.attacks.seedbuild`: development-time rebuild of the seed from ../shared/datasets.

The detector is `bartizan.detectors.known_attacks`; the command line is `bartizan attacks`.
Nothing here loads a model or data at import.
"""
