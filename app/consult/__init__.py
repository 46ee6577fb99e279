"""Realtime consultation rooms: chat, presence, the shared viewer and annotations."""
