"""Training machinery shared by every method: runtime (device, autocast), data on the device,
resumable state, the one loop (engine) and the methods' steps."""
