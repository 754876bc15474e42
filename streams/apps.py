from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from streams.cluster import receivers as cluster_receivers
        from streams.presence import receivers
        from streams.recordings import service as recordings

        receivers.connect()
        recordings.connect()
        cluster_receivers.connect()
