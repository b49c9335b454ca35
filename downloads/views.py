from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """Liveness for load balancers and compose: the process answers and the database does too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
