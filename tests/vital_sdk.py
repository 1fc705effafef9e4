"""Drives Junction's official Python SDK (PyPI `vital`, pinned in .ci/run) against a
running Wearbridge gateway, as an app built on Junction would, and prints on its last
line one JSON object with what every call returned. tests/it/vital_sdk.rs starts the
gateway with a backfilled user, runs this and checks the values against what the
gateway stored.

Environment: WEARBRIDGE_URL (the gateway's base URL), WEARBRIDGE_KEY (a team key),
CONNECTED_USER_ID (a user connected to Oura, WHOOP, Withings and Dexcom and backfilled),
START_DATE and END_DATE (a range holding the backfill), APP_URL (a redirect_url).

With `--webhooks FILE` (a JSON list of webhook bodies the gateway sent) it instead
parses each body with the SDK's model of its event type (`ClientFacing…Changed`,
`ClientFacing…HistoricalPullCompleted`, `ClientFacingProviderConnection…Event`,
`ClientFacingDeviceChanged`) and
prints `{"validated": {event_type: count}, "unmodelled": {…}, "failures": […]}`;
event types Junction has no model of (`provider.connection.deleted`, recovery, our
`daily.data.*.deleted`, `webhook.test`) are counted as unmodelled.

Exit codes: 0 with the JSON on success, 3 when the SDK is not installed, 1 when a call
failed (the traceback says which).
"""

import json
import os
import sys

try:
    import vital
    from vital import Vital
    from vital.core.api_error import ApiError
except ImportError:
    print("the `vital` SDK is not installed (pip install vital)", file=sys.stderr)
    sys.exit(3)


def main():
    base = os.environ["WEARBRIDGE_URL"]
    key = os.environ["WEARBRIDGE_KEY"]
    connected = os.environ["CONNECTED_USER_ID"]
    start, end = os.environ["START_DATE"], os.environ["END_DATE"]
    app_url = os.environ["APP_URL"]
    client = Vital(api_key=key, base_url=base)
    out = {"sdk_version": vital.__version__ if hasattr(vital, "__version__") else None}

    # Users.
    created = client.user.create(client_user_id="sdk-made")
    out["created"] = {"user_id": created.user_id, "client_user_id": created.client_user_id}
    try:
        client.user.create(client_user_id="sdk-made")
        out["duplicate"] = None
    except ApiError as e:
        out["duplicate"] = {"status": e.status_code, "body": as_json(e.body)}
    got = client.user.get(created.user_id)
    out["got"] = {
        "user_id": got.user_id,
        "client_user_id": got.client_user_id,
        "created_on": got.created_on.isoformat(),
        "connected_sources": len(got.connected_sources),
    }
    resolved = client.user.get_by_client_user_id("sdk-made")
    out["resolved"] = resolved.user_id
    page = client.user.get_all(offset=0, limit=100)
    out["all"] = {"total": page.total, "user_ids": sorted(u.user_id for u in page.users)}
    user = client.user.get(connected)
    out["connected_user"] = {
        "sources": sorted(s.provider.slug for s in user.connected_sources),
    }
    providers = client.user.get_connected_providers(connected)
    out["connected_providers"] = sorted(
        (p.slug, p.status, sorted(p.resource_availability)) for p in providers["providers"]
    )

    # Providers and the link flow.
    out["providers"] = sorted(p.slug for p in client.providers.get_all())
    token = client.link.token(user_id=created.user_id, provider="oura", redirect_url=app_url)
    out["link"] = {"link_token": token.link_token, "link_web_url": token.link_web_url}
    oauth = client.link.generate_oauth_link(
        oauth_provider="oura", vital_link_token=token.link_token
    )
    out["oauth"] = {"slug": oauth.slug, "oauth_url": oauth.oauth_url, "auth_type": str(oauth.auth_type)}
    picker = client.link.token(user_id=created.user_id, redirect_url=app_url)
    out["picker_link"] = picker.link_web_url

    # Summaries, in Junction's models.
    sleep = client.sleep.get(connected, start_date=start, end_date=end)
    out["sleep"] = [
        {
            "id": s.id,
            "provider": s.source.provider,
            "calendar_date": s.calendar_date,
            "date": s.date.isoformat(),
            "total": s.total,
            "hr_average": s.hr_average,
            "type": str(s.type),
            "updated_at": s.updated_at.isoformat(),
        }
        for s in sleep.sleep
    ]
    whoop_sleep = client.sleep.get(connected, start_date=start, end_date=end, provider="whoop_v2")
    out["whoop_sleep"] = sorted({s.source.provider for s in whoop_sleep.sleep})
    activity = client.activity.get(connected, start_date=start, end_date=end)
    out["activity"] = [
        {"id": a.id, "provider": a.source.provider, "calendar_date": a.calendar_date, "steps": a.steps, "calories_total": a.calories_total}
        for a in activity.activity
    ]
    workouts = client.workouts.get(connected, start_date=start, end_date=end)
    out["workouts"] = [
        {"id": w.id, "provider_id": w.provider_id, "provider": w.source.provider, "sport": w.sport.slug if w.sport else None, "distance": w.distance, "average_hr": w.average_hr}
        for w in workouts.workouts
    ]
    body = client.body.get(connected, start_date=start, end_date=end)
    out["body"] = [{"id": b.id, "weight": b.weight, "fat": b.fat} for b in body.body]
    try:
        client.profile.get(connected)
        out["profile"] = {"status": 200}
    except ApiError as e:
        out["profile"] = {"status": e.status_code, "body": as_json(e.body)}

    # Timeseries, plain and grouped.
    hr = client.vitals.heartrate(connected, start_date=start, end_date=end)
    out["heartrate"] = [{"timestamp": h.timestamp.isoformat(), "value": h.value, "unit": h.unit} for h in hr]
    grouped = client.vitals.heartrate_grouped(connected, start_date=start, end_date=end)
    out["heartrate_grouped"] = {
        slug: [{"type": g.source.type, "n": len(g.data)} for g in groups]
        for slug, groups in grouped.groups.items()
    }

    # The series Junction names beyond heart rate: blood oxygen (Oura, Withings), body
    # temperature (Withings) and its nightly delta (Oura), grouped by provider.
    for name, call in (
        ("blood_oxygen", client.vitals.blood_oxygen_grouped),
        ("body_temperature", client.vitals.body_temperature_grouped),
        ("body_temperature_delta", client.vitals.body_temperature_delta_grouped),
    ):
        grouped = call(connected, start_date=start, end_date=end)
        out[name + "_grouped"] = {
            slug: sorted(
                [d.timestamp.isoformat(), d.value, d.unit, getattr(d, "start", None) is not None]
                for g in groups
                for d in g.data
            )
            for slug, groups in grouped.groups.items()
        }

    # Devices (Dexcom's), in Junction's `ClientFacingDevice`, one by id, and raw.
    devices = client.user.get_devices(connected)
    out["devices"] = sorted(
        (
            {
                "id": d.id,
                "user_id": d.user_id,
                "provider": d.provider,
                "source_type": str(d.source_type),
                "app_id": d.app_id,
                "device_manufacturer": d.device_manufacturer,
                "device_model": d.device_model,
                "device_id": d.device_id,
            }
            for d in devices
        ),
        key=lambda d: d["id"],
    )
    one = client.user.get_device(connected, devices[0].id) if devices else None
    out["device"] = one.id if one else None
    raw = client.devices.get_raw(connected, provider="dexcom")
    out["devices_raw"] = sorted(
        (
            {"id": d.id, "provider_id": d.provider_id, "slug": d.source.slug, "data_id": d.data.get("id")}
            for d in raw.devices
        ),
        key=lambda d: d["id"],
    )

    # Introspection.
    resources = client.introspect.get_user_resources(user_id=connected)
    out["resources"] = {
        r.user_id: {
            slug: {name: s.sent_count for name, s in stats.items()}
            for slug, stats in r.provider.items()
        }
        for r in resources.data
    }
    pulls = client.introspect.get_user_historical_pulls(user_id=connected)
    out["historical_pull"] = {
        p.user_id: {
            slug: {
                name: {
                    "status": str(s.status),
                    "range_start": s.range_start.isoformat() if s.range_start else None,
                    "range_end": s.range_end.isoformat() if s.range_end else None,
                    "scheduled_at": s.timeline.scheduled_at.isoformat(),
                    "ended_at": s.timeline.ended_at.isoformat() if s.timeline.ended_at else None,
                }
                for name, s in prov.pulled.items()
            }
            for slug, prov in p.provider.items()
        }
        for p in pulls.data
    }

    # Refresh, deregister, delete.
    refreshed = client.user.refresh(connected)
    out["refresh"] = {"success": refreshed.success, "refreshed_sources": sorted(refreshed.refreshed_sources)}
    out["deregister"] = client.user.deregister_provider(connected, "whoop_v2").success
    out["after_deregister"] = sorted(
        p.slug for p in client.user.get_connected_providers(connected)["providers"]
    )
    out["deleted"] = client.user.delete(created.user_id).success
    try:
        client.user.get(created.user_id)
        out["get_deleted"] = None
    except ApiError as e:
        out["get_deleted"] = {"status": e.status_code, "body": as_json(e.body)}

    # Bad input and a bad key, as Junction answers them.
    try:
        client.sleep.get(connected, start_date="someday")
        out["bad_date"] = None
    except ApiError as e:
        out["bad_date"] = {"status": e.status_code, "type": type(e).__name__, "body": as_json(e.body)}
    try:
        Vital(api_key="not-a-key", base_url=base).user.get_all()
        out["bad_key"] = None
    except ApiError as e:
        out["bad_key"] = {"status": e.status_code, "body": as_json(e.body)}

    print(json.dumps(out))


def webhook_model(event_type):
    """The SDK's model of a whole webhook body of `event_type`, or None."""
    import vital.types as types

    parts = event_type.split(".")
    # `blood_oxygen` is `BloodOxygen` in the models' names.
    camel = "".join(w.capitalize() for w in parts[2].split("_")) if len(parts) == 4 else ""
    if event_type == "provider.connection.created":
        name = "ClientFacingProviderConnectionCreatedEvent"
    elif event_type == "provider.connection.error":
        name = "ClientFacingProviderConnectionErrorEvent"
    elif event_type in ("provider.device.created", "provider.device.updated"):
        name = "ClientFacingDeviceChanged"
    elif len(parts) == 4 and parts[:2] == ["historical", "data"] and parts[3] == "created":
        name = f"ClientFacing{camel}HistoricalPullCompleted"
    elif len(parts) == 4 and parts[:2] == ["daily", "data"] and parts[3] in ("created", "updated"):
        name = f"ClientFacing{camel}Changed"
    else:
        return None
    return getattr(types, name, None)


def validate_webhooks(path):
    """Parses every webhook body in the JSON list at `path` with its SDK model."""
    with open(path) as f:
        bodies = json.load(f)
    out = {"validated": {}, "unmodelled": {}, "failures": []}
    for body in bodies:
        event_type = body.get("event_type", "")
        model = webhook_model(event_type)
        if model is None:
            out["unmodelled"][event_type] = out["unmodelled"].get(event_type, 0) + 1
            continue
        try:
            parsed = model.model_validate(body) if hasattr(model, "model_validate") else model.parse_obj(body)
        except Exception as e:  # any refusal by the model is a failure to report
            out["failures"].append({"event_type": event_type, "id": body.get("id"), "error": str(e)})
            continue
        if str(parsed.event_type) != event_type:
            out["failures"].append({"event_type": event_type, "id": body.get("id"), "error": f"parsed as {parsed.event_type!r}"})
            continue
        out["validated"][event_type] = out["validated"].get(event_type, 0) + 1
    print(json.dumps(out))


def as_json(body):
    """An error body as plain JSON (the SDK gives a dict, a model or text)."""
    if hasattr(body, "model_dump"):
        return body.model_dump(mode="json")
    if hasattr(body, "dict"):
        return json.loads(json.dumps(body.dict(), default=str))
    return body


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--webhooks":
        validate_webhooks(sys.argv[2])
    else:
        main()
