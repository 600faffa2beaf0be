"""The wizard's screens, one module each, imported by the app when first shown."""
