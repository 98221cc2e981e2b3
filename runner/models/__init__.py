"""What answers a prompt: real models through litellm, and the offline scripted model."""
