"""A Lambda function in plain Python, exactly as it would be deployed to AWS.

Invoked through a Function URL (or yun's HTTP route) it gets an API Gateway HTTP API v2 event and
returns an HTTP response; invoked directly (the Invoke API, boto3) it gets whatever JSON the caller
sent and returns JSON.
"""

import base64


def handler(event, context):
    if isinstance(event, dict) and "requestContext" in event:
        return http_handler(event, context)
    event = event or {}
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "hello": event.get("name", "world"),
        "requestId": context.aws_request_id,
        "functionArn": context.invoked_function_arn,
        "remainingMs": context.get_remaining_time_in_millis(),
    }


def http_handler(event, context):
    http = event["requestContext"]["http"]
    params = event.get("queryStringParameters") or {}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    text = f"Hello from Python, {http['method']} {event['rawPath']}, name={params.get('name', 'world')}"
    if body:
        text += f", body={body}"
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "cookies": ["lang=python; Path=/"],
        "body": text,
    }
