"""`{% share_max_days %}`: the operator's SHARE_MAX_DAYS, for the job page's share form (its expiry choices)."""

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def share_max_days() -> int:
    return settings.SHARE_MAX_DAYS
