"""Twisted endpoint plugin `guard:` (fc25_denoise/request_guard.py): found by Twisted's plugin
search in every `twisted/plugins` folder on sys.path (no __init__.py in `twisted/` on purpose)."""

from typing import Any

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _GuardParser:
    prefix = "guard"

    def parseStreamServer(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from fc25_denoise.request_guard import parse  # only when a guard: endpoint is asked for

        return parse(reactor, *args, **kwargs)


parser = _GuardParser()
