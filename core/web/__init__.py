"""What the two web apps share, the window console (``unstuck.console``) and the applicant's portal
(``unstuck.portal``): the bus client, the middleware (a body limit, security headers), CSRF-checked
forms, serving on a socket inside a running event loop, and simplified characters."""
