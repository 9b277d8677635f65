"""The upstream HTTP/1.1 client (`client.Http1Client`): keep-alive connections (`connection`) pooled
per origin (`pool`), each answer received as a `response.Response`; what it raises is in `errors`."""
