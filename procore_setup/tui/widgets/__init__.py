"""Small widgets and dialogs shared by the wizard's screens."""
