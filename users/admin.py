from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from users.models import FriendRequest, Friendship, User

admin.site.register(User, UserAdmin)
admin.site.register(Friendship)
admin.site.register(FriendRequest)
