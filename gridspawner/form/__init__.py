"""The spawn form: server-rendered (Jinja2, autoescaped), parsed back into user_options."""

from .parse import parse_form
from .render import render_form

__all__ = ["parse_form", "render_form"]
