"""Which channel layer an app uses, named the way Channels names layers: by alias.

Channels' consumers find their layer with `get_channel_layer(self.channel_layer_alias)`,
which Django's CHANNEL_LAYERS setting fills ("default"). An app given a layer instance of
its own (`build_application(schema, layer=SomeLayer())`: each test client's fresh in-process
layer, several apps in one process) gets an alias nobody else uses, under which Channels'
layer manager holds that instance (`channel_layers.set`, which Channels keeps for swapping a
backend in tests). Django's settings are neither read nor changed for it, so any number of
such apps can be built in a process whose Django was configured once.

A test client also makes its app's layer the default while it runs (push_default_layer), so
that resolvers calling `get_channel_layer()` themselves reach its subscriptions, as they do
the server's.
"""

from __future__ import annotations

import itertools
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers
from django.core.signals import setting_changed
from django.dispatch import receiver

_app_numbers = itertools.count(1)
_app_layers: dict[str, BaseChannelLayer] = {}  # alias -> the layer of the app it was made for


def register_app_layer(layer: BaseChannelLayer) -> str:
    """The alias under which `layer`, and nothing else, is this app's channel layer."""
    alias = f"gqlchannels-app-{next(_app_numbers)}"
    _app_layers[alias] = layer
    channel_layers.set(alias, layer)
    return alias


def forget_layer(alias: str) -> None:
    """Drop the layer Channels holds under `alias`, once it is closed: the default one is
    built afresh from the settings on next use; an app's own is no longer held in memory."""
    _app_layers.pop(alias, None)
    channel_layers.backends.pop(alias, None)


class _Defaults:
    """Layers made Channels' default for a while (by test clients), the latest last, and the
    default they replaced."""

    stack: list[BaseChannelLayer] = []
    replaced: BaseChannelLayer | None = None


def push_default_layer(layer: BaseChannelLayer) -> None:
    """Make `layer` what `get_channel_layer()` returns, until pop_default_layer(layer):
    code that asks Channels for its layer directly (Strawberry's Channels page does) then
    reaches the same layer as the app given it."""
    if not _Defaults.stack:
        _Defaults.replaced = channel_layers.backends.get(DEFAULT_CHANNEL_LAYER)
    _Defaults.stack.append(layer)
    channel_layers.set(DEFAULT_CHANNEL_LAYER, layer)


def pop_default_layer(layer: BaseChannelLayer) -> None:
    """Undo push_default_layer(layer): the default is the latest layer still pushed, else
    the one replaced (built from the settings on next use if there was none)."""
    _Defaults.stack.remove(layer)
    if _Defaults.stack:
        channel_layers.set(DEFAULT_CHANNEL_LAYER, _Defaults.stack[-1])
    elif _Defaults.replaced is None:
        forget_layer(DEFAULT_CHANNEL_LAYER)
    else:
        channel_layers.set(DEFAULT_CHANNEL_LAYER, _Defaults.replaced)
        _Defaults.replaced = None


@receiver(setting_changed)
def _keep_app_layers(setting: str, **kwargs: Any) -> None:
    # Channels forgets every layer it holds when CHANNEL_LAYERS changes (override_settings in
    # a test; its receiver, connected before this one, runs first). The apps' own layers are
    # not in the settings: without this their consumers would be left without a layer, and a
    # running test client's layer would stop being the default.
    if setting == "CHANNEL_LAYERS":
        for alias, layer in _app_layers.items():
            channel_layers.set(alias, layer)
        if _Defaults.stack:
            channel_layers.set(DEFAULT_CHANNEL_LAYER, _Defaults.stack[-1])
