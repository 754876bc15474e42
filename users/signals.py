"""Friend-graph events, sent only after the transaction that caused them commits.

Presence connects receivers to these; the friendship service never imports presence code.
"""

from django.dispatch import Signal

friend_request_created = Signal()  # request: FriendRequest
friend_request_updated = Signal()  # request: FriendRequest (status accepted/rejected/cancelled)
friendship_created = Signal()  # user: User, friend: User
friendship_removed = Signal()  # user: User, friend: User
