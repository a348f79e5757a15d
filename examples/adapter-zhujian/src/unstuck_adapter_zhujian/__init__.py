"""住房和城鄉建設局 (zhujian): department adapter for the unstuck coordination bus."""

from .adapter import ZhujianAdapter

__all__ = ["ZhujianAdapter"]
